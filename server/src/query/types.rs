//! SQL type names beyond DataFusion's own, as the clients and tools we serve write
//! them (JDBC, MySQL- and PostgreSQL-minded DDL), mapped to the Arrow types a Delta
//! table can store.
//!
//! | SQL                                   | Arrow                         |
//! |---------------------------------------|-------------------------------|
//! | `TIMESTAMP WITH TIME ZONE`, `TIMESTAMPTZ` (any precision) | `Timestamp(ns, "UTC")` (Delta `timestamp`, UTC) |
//! | `TIMESTAMP(p)`, `DATETIME`, `DATETIME(p)` | `Timestamp(ns)` (Delta `timestamp_ntz`) |
//! | `VARBINARY`, `VARBINARY(n)`, `BLOB`    | `Binary`                      |
//! | `TIME(p)`                             | `Time64(ns)` in queries; a table column is refused (Delta has no time type) |
//!
//! Everything else is planned by DataFusion as before.

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::error::Result;
use datafusion::logical_expr::planner::TypePlanner;
use datafusion::sql::sqlparser::ast::{DataType as SqlType, TimezoneInfo};

/// The session's type planner (see the module docs).
#[derive(Debug, Default)]
pub(super) struct LakehouseTypes;

impl TypePlanner for LakehouseTypes {
    #[allow(deprecated)] // plan_type_field's default wraps this one
    fn plan_type(&self, sql_type: &SqlType) -> Result<Option<DataType>> {
        Ok(match sql_type {
            SqlType::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => Some(
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            ),
            SqlType::Timestamp(Some(_), TimezoneInfo::None | TimezoneInfo::WithoutTimeZone)
            | SqlType::Datetime(_) => Some(DataType::Timestamp(TimeUnit::Nanosecond, None)),
            SqlType::Varbinary(_) | SqlType::Blob(_) => Some(DataType::Binary),
            SqlType::Time(Some(_), TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
                Some(DataType::Time64(TimeUnit::Nanosecond))
            }
            _ => None,
        })
    }
}
