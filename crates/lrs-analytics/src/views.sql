-- The named views (docs/analytics.md, "Views"), over the `statements` view
-- (the files' rows with `voided`). Plain SQL: DataFusion in the LRS and
-- DuckDB in the benchmark run the same text, split at semicolons (none
-- in comments).

-- The rows the figures count (docs/progress-and-figures.md): not voided,
-- not voiding, with what each means for the figures.
CREATE VIEW figure_facts AS
SELECT month, tenant, app, library, actor_token, course, module, about_course,
       means_ended, means_passed, duration_seconds,
       (course IS NOT NULL AND means_enrolled) AS counts_enrolled,
       (course IS NOT NULL AND NOT (means_enrolled AND NOT (means_started OR means_progressed
           OR means_ended OR means_completed OR means_passed OR means_failed))) AS counts_started,
       (about_course AND (means_completed OR means_passed)) AS counts_completed
FROM statements
WHERE NOT voided AND NOT is_voiding;

-- The monthly figures per scope: the total, each library (ISIL), each app.
CREATE VIEW monthly_figures AS
SELECT month, 'total' AS scope, CAST(NULL AS VARCHAR) AS scope_id,
       count(*) AS hits,
       count(DISTINCT actor_token) AS active_users,
       count(DISTINCT CASE WHEN counts_enrolled THEN actor_token END) AS enrolled_participants,
       count(DISTINCT CASE WHEN counts_started THEN actor_token END) AS participants_started,
       count(DISTINCT CASE WHEN counts_started THEN actor_token || ' ' || course END) AS courses_started,
       count(DISTINCT CASE WHEN counts_completed THEN actor_token || ' ' || course END) AS courses_completed
FROM figure_facts GROUP BY month
UNION ALL
SELECT month, 'library' AS scope, library AS scope_id,
       count(*), count(DISTINCT actor_token),
       count(DISTINCT CASE WHEN counts_enrolled THEN actor_token END),
       count(DISTINCT CASE WHEN counts_started THEN actor_token END),
       count(DISTINCT CASE WHEN counts_started THEN actor_token || ' ' || course END),
       count(DISTINCT CASE WHEN counts_completed THEN actor_token || ' ' || course END)
FROM figure_facts WHERE library IS NOT NULL GROUP BY month, library
UNION ALL
SELECT month, 'app' AS scope, app AS scope_id,
       count(*), count(DISTINCT actor_token),
       count(DISTINCT CASE WHEN counts_enrolled THEN actor_token END),
       count(DISTINCT CASE WHEN counts_started THEN actor_token END),
       count(DISTINCT CASE WHEN counts_started THEN actor_token || ' ' || course END),
       count(DISTINCT CASE WHEN counts_completed THEN actor_token || ' ' || course END)
FROM figure_facts WHERE app IS NOT NULL GROUP BY month, app;

-- Per month and course: learners who started it, and who completed it.
CREATE VIEW top_courses AS
SELECT month, course,
       count(DISTINCT CASE WHEN counts_started THEN actor_token END) AS learners_started,
       count(DISTINCT CASE WHEN counts_completed THEN actor_token END) AS learners_completed
FROM figure_facts WHERE course IS NOT NULL GROUP BY month, course;

-- Per course, over all months: how many learners enrolled, started,
-- completed and passed it.
CREATE VIEW completion_funnel AS
SELECT course,
       count(DISTINCT CASE WHEN counts_enrolled THEN actor_token END) AS enrolled,
       count(DISTINCT CASE WHEN counts_started THEN actor_token END) AS started,
       count(DISTINCT CASE WHEN counts_completed THEN actor_token END) AS completed,
       count(DISTINCT CASE WHEN about_course AND means_passed THEN actor_token END) AS passed
FROM figure_facts WHERE course IS NOT NULL GROUP BY course;

-- Per month, course and module: time spent (the durations of `ended`
-- statements, as progress counts them), and per learner.
CREATE VIEW time_spent AS
SELECT month, course, module,
       count(DISTINCT actor_token) AS learners,
       sum(CASE WHEN means_ended THEN duration_seconds END) AS seconds,
       sum(CASE WHEN means_ended THEN duration_seconds END)
           / NULLIF(count(DISTINCT actor_token), 0) AS seconds_per_learner
FROM figure_facts WHERE course IS NOT NULL GROUP BY month, course, module;
