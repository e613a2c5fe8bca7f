//! `vector_search('index', 'query text', k [, ef])`: the nearest rows as a SQL table
//! (`id`, `distance`, `text`, `rank`), joinable with any table, so JDBC/BI clients
//! search too:
//!
//! ```sql
//! SELECT p.title, s.distance
//! FROM vector_search('papers_idx', 'graph neural networks', 5) s
//! JOIN papers p ON p.id = s.id ORDER BY s.rank
//! ```

use std::sync::Arc;

use arrow::array::{Float32Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::service::{VectorError, VectorIndexes};

/// The `vector_search` table function.
#[derive(Debug)]
pub struct VectorSearchFunction {
    indexes: Arc<VectorIndexes>,
}

impl VectorSearchFunction {
    /// The function over the server's indexes.
    pub fn new(indexes: Arc<VectorIndexes>) -> Self {
        Self { indexes }
    }
}

fn usage() -> DataFusionError {
    DataFusionError::Plan(
        "vector_search takes ('index', 'query text', k [, ef]) with literal arguments, e.g. vector_search('docs_idx', 'red shoes', 10)"
            .into(),
    )
}

fn text(expr: &Expr) -> Result<String> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Ok(s.clone()),
        _ => Err(usage()),
    }
}

fn count(expr: &Expr) -> Result<usize> {
    match expr {
        Expr::Literal(value, _) => match value.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(Some(n))) if n >= 0 => Ok(n as usize),
            _ => Err(usage()),
        },
        _ => Err(usage()),
    }
}

impl TableFunctionImpl for VectorSearchFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(3..=4).contains(&exprs.len()) {
            return Err(usage());
        }
        Ok(Arc::new(VectorSearchTable {
            indexes: Arc::clone(&self.indexes),
            index: text(&exprs[0])?,
            query: text(&exprs[1])?,
            k: count(&exprs[2])?,
            ef: exprs.get(3).map(count).transpose()?.unwrap_or(0),
        }))
    }
}

/// One call's result.
#[derive(Debug)]
struct VectorSearchTable {
    indexes: Arc<VectorIndexes>,
    index: String,
    query: String,
    k: usize,
    ef: usize,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("distance", DataType::Float32, false),
        Field::new("text", DataType::Utf8, true),
        Field::new("rank", DataType::Int32, false),
    ]))
}

/// A vector error as DataFusion's: bad input is a plan error (InvalidArgument), a
/// missing index a "not found" execution error.
fn to_datafusion(error: VectorError) -> DataFusionError {
    match error {
        VectorError::Invalid(m) => DataFusionError::Plan(m),
        other => DataFusionError::External(Box::new(other)),
    }
}

#[async_trait]
impl TableProvider for VectorSearchTable {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let hits = self
            .indexes
            .search(&self.index, &self.query, &[], self.k, self.ef, "")
            .await
            .map_err(to_datafusion)?;
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(hits.iter().map(|h| h.id))),
                Arc::new(Float32Array::from_iter_values(
                    hits.iter().map(|h| h.distance),
                )),
                Arc::new(StringArray::from_iter_values(
                    hits.iter().map(|h| h.text.as_str()),
                )),
                Arc::new(Int32Array::from_iter_values(1..=hits.len() as i32)),
            ],
        )?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            schema(),
            projection.cloned(),
        )?)
    }
}
