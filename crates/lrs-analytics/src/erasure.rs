//! People erased: once the log says a person was erased, no Parquet row may
//! hold their token. The rows stay (with `actor_token` NULL), so counts of
//! statements stay right; docs/analytics.md, "Erasure".

use crate::error::AnalyticsError;
use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use bytes::Bytes;
use lrs_core::Event;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The token (hex) of the person an event erases, if it is an erasure.
pub fn erased_token(event: &Event) -> Option<String> {
    match event {
        Event::PersonErasedV1(erased) => Some(erased.token.to_hex()),
        _ => None,
    }
}

/// The rows of a statements file with every actor in `tokens` set to NULL,
/// or `None` if the file holds none of them (then it stays as it is).
pub fn without_tokens(
    file: Bytes,
    tokens: &BTreeSet<String>,
) -> Result<Option<RecordBatch>, AnalyticsError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?
        .with_batch_size(64 * 1024)
        .build()?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let schema = crate::schema::statements();
    let batch = arrow::compute::concat_batches(&schema, &batches)?;
    let index = schema.index_of("actor_token")?;
    let actors = batch
        .column(index)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| AnalyticsError::Corrupt("actor_token is not text".into()))?;
    if !actors.iter().flatten().any(|actor| tokens.contains(actor)) {
        return Ok(None);
    }
    let erased: StringArray = actors
        .iter()
        .map(|actor| actor.filter(|a| !tokens.contains(*a)))
        .collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[index] = Arc::new(erased);
    Ok(Some(RecordBatch::try_new(schema, columns)?))
}
