//! What the two stores share because it is truly identical: errors and row decoding.
//! The SQL itself lives in each store, written for its database.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{Device, StoreError};

/// Maps a driver error: a unique violation is a conflict, undecodable data is corruption,
/// everything else means the database is unavailable (the caller answers 503).
pub(super) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// The failing finding ids, stored comma-separated (ids never contain commas).
pub(super) fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every column of a device.
pub(super) const DEVICE_ALL: &str = "id, owner, key_kind, key_record, ek_trust, key_assurance, \
    enrolled_at, disabled, host, last_seen, evidence_iat, status, failing, decision, report";

/// The columns of a decision (no key record, no report).
pub(super) const DEVICE_STATE: &str = "id, owner, key_kind, ek_trust, key_assurance, \
    enrolled_at, disabled, host, last_seen, evidence_iat, status, failing, decision";

/// The columns of a listing (no key record, no decision, no report).
pub(super) const DEVICE_LISTING: &str = "id, owner, key_kind, ek_trust, key_assurance, \
    enrolled_at, disabled, host, last_seen, evidence_iat, status, failing";

/// Which of the column sets above a row has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Columns {
    Listing,
    State,
    All,
}

fn get<'r, R, T>(row: &'r R, column: &'r str) -> Result<T, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A [`Device`] from a row with `columns`; the columns it lacks are left empty.
pub(super) fn device_from_row<'r, R>(row: &'r R, columns: Columns) -> Result<Device, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Device {
        id: get(row, "id")?,
        owner: get(row, "owner")?,
        key_kind: get(row, "key_kind")?,
        key_record: if columns == Columns::All {
            get(row, "key_record")?
        } else {
            String::new()
        },
        ek_trust: get(row, "ek_trust")?,
        key_assurance: get(row, "key_assurance")?,
        enrolled_at: get(row, "enrolled_at")?,
        disabled: get::<_, i64>(row, "disabled")? != 0,
        host: get(row, "host")?,
        last_seen: get(row, "last_seen")?,
        evidence_iat: get(row, "evidence_iat")?,
        status: get(row, "status")?,
        failing: split_list(&get::<_, String>(row, "failing")?),
        decision_json: if columns >= Columns::State {
            get(row, "decision")?
        } else {
            None
        },
        report_json: if columns == Columns::All {
            get(row, "report")?
        } else {
            None
        },
    })
}
