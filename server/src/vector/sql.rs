//! Search as SQL table functions, joinable with any table, so JDBC/BI clients search
//! too. Each returns `id`, `score` (higher is better), `distance` (null where unknown),
//! `text` and `rank` (from 1):
//!
//! - `vector_search('index', 'query text', k [, ef])`: nearest by embedding;
//! - `text_search('index', 'query text', k)`: BM25 over the indexed column;
//! - `hybrid_search('index', 'query text', k [, ef])`: both, fused by reciprocal rank.
//!
//! ```sql
//! SELECT p.title, s.score
//! FROM hybrid_search('papers_idx', 'graph neural networks', 5) s
//! JOIN papers p ON p.id = s.id ORDER BY s.rank
//! ```

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::error::VectorError;
use super::hits::hits_schema;
use super::search::{Mode, Search};
use super::service::VectorIndexes;
use crate::query::BoundProfile;

/// One of the search table functions.
#[derive(Debug)]
pub(crate) struct SearchFunction {
    indexes: Arc<VectorIndexes>,
    mode: Mode,
}

impl SearchFunction {
    /// The function of `mode` over the server's indexes.
    pub(crate) fn new(indexes: Arc<VectorIndexes>, mode: Mode) -> Self {
        Self { indexes, mode }
    }

    /// The SQL name of the function of `mode`.
    pub(crate) fn name(mode: Mode) -> &'static str {
        match mode {
            Mode::Vector => "vector_search",
            Mode::Text => "text_search",
            Mode::Hybrid => "hybrid_search",
        }
    }

    fn usage(&self) -> DataFusionError {
        let name = Self::name(self.mode);
        let ef = if self.mode == Mode::Text {
            ""
        } else {
            " [, ef]"
        };
        DataFusionError::Plan(format!(
            "{name} takes ('index', 'query text', k{ef}) with literal arguments, e.g. {name}('docs_idx', 'red shoes', 10)"
        ))
    }

    fn text(&self, expr: &Expr) -> Result<String> {
        match expr {
            Expr::Literal(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)),
                _,
            ) => Ok(s.clone()),
            _ => Err(self.usage()),
        }
    }

    fn count(&self, expr: &Expr) -> Result<usize> {
        match expr {
            Expr::Literal(value, _) => match value.cast_to(&DataType::Int64) {
                Ok(ScalarValue::Int64(Some(n))) if n >= 0 => Ok(n as usize),
                _ => Err(self.usage()),
            },
            _ => Err(self.usage()),
        }
    }
}

impl TableFunctionImpl for SearchFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let most = if self.mode == Mode::Text { 3 } else { 4 };
        if !(3..=most).contains(&exprs.len()) {
            return Err(self.usage());
        }
        Ok(Arc::new(SearchTable {
            indexes: Arc::clone(&self.indexes),
            search: Search {
                index: self.text(&exprs[0])?,
                query: self.text(&exprs[1])?,
                vector: Vec::new(),
                k: self.count(&exprs[2])?,
                ef: exprs
                    .get(3)
                    .map(|e| self.count(e))
                    .transpose()?
                    .unwrap_or(0),
                nprobe: 0,
                refine_factor: 0,
                filter: String::new(),
                mode: self.mode,
            },
        }))
    }
}

/// One call's result.
#[derive(Debug)]
struct SearchTable {
    indexes: Arc<VectorIndexes>,
    search: Search,
}

/// A vector error as DataFusion's: bad input is a plan error; anything else travels
/// as itself, and the flight layer gives it the status the action would.
fn to_datafusion(error: VectorError) -> DataFusionError {
    match error {
        VectorError::Invalid(m) => DataFusionError::Plan(m),
        other => DataFusionError::External(Box::new(other)),
    }
}

#[async_trait]
impl TableProvider for SearchTable {
    fn schema(&self) -> SchemaRef {
        hits_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let bound = state.config().get_extension::<BoundProfile>();
        self.indexes
            .check_profile(&self.search.index, bound.as_ref().map(|b| b.0.as_str()))
            .map_err(to_datafusion)?;
        let batch = self
            .indexes
            .hits_batch(&self.search, &[])
            .await
            .map_err(to_datafusion)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            hits_schema(),
            projection.cloned(),
        )?)
    }
}
