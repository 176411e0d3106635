"""A cmi5-like session through the Python `tincan` package (PyPI, 1.0.0),
unmodified: the same session as tincanjs.cjs (the LMS's launch data and
`launched`; the AU's initialized, progressed, state documents, an agent
profile read, an activity profile, completed, passed, terminated; the
registration's statements read back), plus the package's traps that
docs/clients.md describes, as observed.

    LRS_ENDPOINT=http://127.0.0.1:8080/xapi/ LRS_KEY=... LRS_SECRET=... XAPI_VERSION=1.0.3 python tincan_session.py

XAPI_VERSION is one of tincan.Version.supported (1.0.3, 1.0.2, 1.0.1, 1.0.0).
Prints `observed: ...` lines, then `all N checks passed` and exits 0; else
every failed check and exits 1 (2 when the environment is incomplete).
"""

import hashlib
import json
import os
import sys
import uuid
from datetime import datetime, timedelta, timezone

from tincan import (
    Activity,
    ActivityDefinition,
    ActivityList,
    Agent,
    AgentAccount,
    Context,
    ContextActivities,
    Extensions,
    LanguageMap,
    RemoteLRS,
    Result,
    Score,
    Statement,
    Verb,
    Version,
)
from tincan.documents import ActivityProfileDocument, StateDocument
from tincan.http_request import HTTPRequest

env = {k: os.environ.get(k) for k in ("LRS_ENDPOINT", "LRS_KEY", "LRS_SECRET", "XAPI_VERSION")}
if not all(env.values()):
    print("set LRS_ENDPOINT, LRS_KEY, LRS_SECRET and XAPI_VERSION", file=sys.stderr)
    sys.exit(2)
VERSION = env["XAPI_VERSION"]
if VERSION not in Version.supported:
    print(f"tincan speaks {', '.join(Version.supported)}, not {VERSION}", file=sys.stderr)
    sys.exit(2)

lrs = RemoteLRS(
    endpoint=env["LRS_ENDPOINT"],
    version=VERSION,
    username=env["LRS_KEY"],
    password=env["LRS_SECRET"],
)

failures = []
checks = 0


def check(what, condition, detail=None):
    global checks
    checks += 1
    if not condition:
        failures.append(what if detail is None else f"{what}: {detail}")


def observed(what):
    print(f"observed: {what}")


def status(response):
    return response.response.status if response.response is not None else None


def text(content):
    return bytes(content).decode("utf-8") if isinstance(content, (bytes, bytearray)) else content


run = str(uuid.uuid4())
registration = str(uuid.uuid4())
agent = Agent(
    account=AgentAccount(home_page="https://bibliotheek.example.nl", name=f"tincan-py-{run}"),
    name="Python Leerling",
)
course = f"https://courses.example.nl/tincan-py/{run}"
au = Activity(
    id=f"{course}/au-1",
    definition=ActivityDefinition(
        type="https://w3id.org/xapi/cmi5/activitytype/block",
        name=LanguageMap({"nl-NL": "Module 1"}),
    ),
)


def verb(name):
    return Verb(id=f"http://adlnet.gov/expapi/verbs/{name}", display=LanguageMap({"en-US": name}))


def statement(name, result=None):
    return Statement(
        id=str(uuid.uuid4()),
        actor=agent,
        verb=verb(name),
        object=au,
        result=result,
        context=Context(
            registration=registration,
            context_activities=ContextActivities(
                grouping=ActivityList([Activity(id=course)]),
                category=ActivityList([Activity(id="https://w3id.org/xapi/cmi5/context/categories/cmi5")]),
            ),
        ),
        timestamp=datetime.now(timezone.utc),
    )


def save(name, result=None):
    s = statement(name, result)
    response = lrs.save_statement(s)
    check(name, response.success, f"HTTP {status(response)} {text(response.data)}")
    return s


def state_doc(state_id, content, content_type, etag=None):
    return StateDocument(
        activity=au,
        agent=agent,
        id=state_id,
        registration=registration,
        content=content,
        content_type=content_type,
        etag=etag,
    )


def session():
    # ---- The LMS: launch data and `launched` -------------------------------
    launch_data = {"contextTemplate": {"registration": registration}, "launchMode": "Normal", "moveOn": "CompletedAndPassed"}
    response = lrs.save_state(state_doc("LMS.LaunchData", json.dumps(launch_data), "application/json"))
    check("PUT LMS.LaunchData", response.success, f"HTTP {status(response)} {text(response.data)}")
    sent = [save("launched")]

    # ---- The AU ------------------------------------------------------------
    # Trap: save_state sends no registration, so the document was stored
    # without one; reading it back with the registration finds nothing.
    response = lrs.retrieve_state(au, agent, "LMS.LaunchData", registration=registration)
    with_registration = status(response)
    response = lrs.retrieve_state(au, agent, "LMS.LaunchData")
    without = status(response)
    content = text(response.content.content) if response.success and response.content is not None else None
    check("the launch data as sent, stored without the registration", without == 200 and content is not None and json.loads(content) == launch_data, f"HTTP {without} {content}")
    check("nothing under the registration", with_registration == 404, f"HTTP {with_registration}")
    observed(f"tincan {VERSION}: save_state(registration=R) then retrieve_state(registration=R): HTTP {with_registration}; without registration: HTTP {without}")

    response = lrs.retrieve_agent_profile(agent, "cmi5LearnerPreferences")
    check("an absent agent profile: 404", status(response) == 404, f"HTTP {status(response)}")

    sent.append(save("initialized"))
    sent.append(save("progressed", Result(extensions=Extensions({"https://w3id.org/xapi/cmi5/result/extensions/progress": 50}))))

    # Bookmark (text).
    response = lrs.save_state(state_doc("bookmark", "pagina-3", "text/plain"))
    check("PUT bookmark", response.success, f"HTTP {status(response)}")
    response = lrs.retrieve_state(au, agent, "bookmark")
    bookmark = response.content if response.success else None
    check("GET bookmark", bookmark is not None and text(bookmark.content) == "pagina-3", repr(bookmark and bookmark.content))

    # Trap: retrieve_state looks for the ETag in a list of header pairs, so
    # a document read back never has one.
    check("a read document has no ETag", bookmark is not None and bookmark.etag is None, repr(bookmark and bookmark.etag))
    observed(f"tincan {VERSION}: retrieve_state(...).content.etag is {bookmark and bookmark.etag!r}")

    # Trap: save_state sends its request twice; with If-Match (an ETag
    # computed by hand: the quoted SHA-1 of the content) the second one
    # carries the ETag the first one just replaced.
    etag = '"' + hashlib.sha1(b"pagina-3").hexdigest() + '"'
    response = lrs.save_state(state_doc("bookmark", "pagina-4", "text/plain", etag=etag))
    again = lrs.retrieve_state(au, agent, "bookmark")
    now = text(again.content.content) if again.success else None
    check("save_state with If-Match: the second request is refused (412)", status(response) == 412, f"HTTP {status(response)}")
    check("the first one stored the document", now == "pagina-4", repr(now))
    observed(f"tincan {VERSION}: save_state(etag=E) answers HTTP {status(response)} while the document became {now!r}")

    # Trap: a profile PUT without If-Match or If-None-Match (the package
    # cannot send If-None-Match) on an absent profile.
    profile = ActivityProfileDocument(activity=au, id="course-settings", content=json.dumps({"taal": "nl-NL"}), content_type="application/json")
    response = lrs.save_activity_profile(profile)
    first_put = status(response)
    check("a first activity-profile PUT is refused (400)", first_put == 400, f"HTTP {first_put} {text(response.data)}")
    observed(f"tincan {VERSION}: save_activity_profile on an absent profile: HTTP {first_put} {text(response.data)[:200]}")
    response = lrs.retrieve_activity_profile(au, "course-settings")
    check("so the profile is absent", status(response) == 404, f"HTTP {status(response)}")
    # The way round it: the package's own request object with the header.
    request = HTTPRequest(method="PUT", resource="activities/profile", content=profile.content)
    request.headers["Content-Type"] = "application/json"
    request.headers["If-None-Match"] = "*"
    request.query_params = {"profileId": "course-settings", "activityId": au.id}
    response = lrs._send_request(request)
    check("a PUT with If-None-Match: * through HTTPRequest", status(response) == 204, f"HTTP {status(response)} {text(response.data)}")
    response = lrs.retrieve_activity_profile(au, "course-settings")
    got = text(response.content.content) if response.success else None
    check("the profile as sent", got is not None and json.loads(got) == {"taal": "nl-NL"}, repr(got))

    sent.append(save("completed", Result(completion=True, duration=timedelta(minutes=4, seconds=30))))
    sent.append(save("passed", Result(success=True, score=Score(scaled=0.8), duration=timedelta(minutes=4, seconds=31))))
    sent.append(save("terminated", Result(duration=timedelta(minutes=4, seconds=32))))

    # ---- Read back ---------------------------------------------------------
    # Trap: a Python bool goes into the query as "True", which is not the
    # JSON boolean the spec asks for.
    response = lrs.query_statements({"registration": registration, "ascending": True})
    check("ascending=True is refused (400)", status(response) == 400, f"HTTP {status(response)}")
    observed(f"tincan {VERSION}: query_statements(ascending=True): HTTP {status(response)} {text(response.data)[:200]}")
    response = lrs.query_statements({"registration": registration, "ascending": "true"})
    ids = [str(s.id) for s in response.content.statements] if response.success else []
    check("the registration's statements, in order", ids == [str(s.id) for s in sent], f"HTTP {status(response)} {ids}")
    response = lrs.retrieve_statement(str(sent[4].id))
    one = response.content if response.success else None
    check("a statement by id", one is not None and str(one.id) == str(sent[4].id), f"HTTP {status(response)}")
    if one is not None:
        check("its result", one.result.success is True and one.result.score.scaled == 0.8, repr(one.result))
        check("its registration", str(one.context.registration) == registration, repr(one.context.registration))


try:
    session()
except Exception as error:  # noqa: BLE001 - a failure of the run, reported
    import traceback

    failures.append("threw: " + "".join(traceback.format_exception(error)))

if failures:
    print(f"{len(failures)} of {checks}+ checks failed (tincan, xAPI {VERSION}):", file=sys.stderr)
    for failure in failures:
        print(f"  - {failure}", file=sys.stderr)
    sys.exit(1)
print(f"all {checks} checks passed (tincan, xAPI {VERSION})")
