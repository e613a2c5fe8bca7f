//! Catalog entries beside tables' rows: PII findings and verdicts, watermarks, vector
//! index and eval-set entries, and what a bucket holds.

use lakehouse_flight_ext::v1::ColumnPii;

use super::{Catalog, CatalogDocument, CatalogError, EvalSetEntry, IndexEntry, Result, TableEntry};

/// What `doc` keeps in `bucket`: its tables, the indexes in it or over those
/// tables, and the eval sets in it or of those indexes.
pub(super) fn contents_of(doc: &CatalogDocument, bucket: &str) -> BucketContents {
    let tables: Vec<String> = doc
        .tables
        .iter()
        .filter(|t| t.bucket == bucket)
        .map(TableEntry::qualified_name)
        .collect();
    let indexes: Vec<String> = doc
        .indexes
        .iter()
        .filter(|i| i.bucket == bucket || tables.contains(&format!("{}.{}", i.schema, i.table)))
        .map(|i| i.name.clone())
        .collect();
    let eval_sets = doc
        .eval_sets
        .iter()
        .filter(|e| e.bucket == bucket || indexes.contains(&e.index))
        .map(|e| e.name.clone())
        .collect();
    BucketContents {
        tables,
        indexes,
        eval_sets,
    }
}

/// Catalog entries that live in one bucket (see [`Catalog::in_bucket`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BucketContents {
    /// `schema.table` of the tables.
    pub tables: Vec<String>,
    /// Index names.
    pub indexes: Vec<String>,
    /// Eval set names.
    pub eval_sets: Vec<String>,
}

/// Puts `item` in the list kept sorted by name, replacing (and returning) the item of
/// the same name.
pub(super) fn upsert<T>(items: &mut Vec<T>, item: T, name: impl Fn(&T) -> &String) -> Option<T> {
    let old = items
        .iter()
        .position(|i| name(i) == name(&item))
        .map(|at| items.remove(at));
    items.push(item);
    items.sort_by(|a, b| name(a).cmp(name(b)));
    old
}

impl Catalog {
    /// Records the detector's PII findings for `schema.table`: each replaces the
    /// earlier finding of its column, other columns keep theirs.
    pub(crate) async fn record_pii(
        &self,
        schema: &str,
        table: &str,
        findings: Vec<ColumnPii>,
        replace_all: bool,
    ) -> Result<TableEntry> {
        self.update_entry(schema, table, |entry| {
            if replace_all {
                entry.pii.clear();
            }
            for finding in findings {
                entry.pii.retain(|f| f.column != finding.column);
                entry.pii.push(finding);
            }
            entry.pii.sort_by(|a, b| a.column.cmp(&b.column));
            Ok(())
        })
        .await
    }

    /// Records a manual PII verdict on a column (`entity_type` empty: not PII), or
    /// with `clear` removes it. The column must exist.
    pub(crate) async fn mark_pii(
        &self,
        schema: &str,
        table: &str,
        column: &str,
        entity_type: &str,
        clear: bool,
    ) -> Result<TableEntry> {
        let entry = self.table(schema, table)?;
        let columns = self.table_schema(&entry).await?;
        if columns.field_with_name(column).is_err() {
            return Err(CatalogError::ColumnNotFound {
                table: entry.qualified_name(),
                column: column.to_string(),
            });
        }
        self.update_entry(schema, table, |entry| {
            entry.pii_manual.retain(|f| f.column != column);
            if !clear {
                entry.pii_manual.push(ColumnPii {
                    column: column.to_string(),
                    entity_type: entity_type.to_string(),
                    confidence: 1.0,
                    manual: true,
                    detector_version: "manual".into(),
                    ..ColumnPii::default()
                });
                entry.pii_manual.sort_by(|a, b| a.column.cmp(&b.column));
            }
            Ok(())
        })
        .await
    }

    /// Stores an incremental-ingest watermark with `schema.table`.
    pub(crate) async fn set_watermark(
        &self,
        schema: &str,
        table: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        self.update_entry(schema, table, |entry| {
            entry.watermarks.insert(key.to_string(), value.to_string());
            Ok(())
        })
        .await
        .map(drop)
    }

    /// The vector index `name`.
    pub(crate) fn index(&self, name: &str) -> Option<IndexEntry> {
        self.snapshot()
            .indexes
            .iter()
            .find(|i| i.name == name)
            .cloned()
    }

    /// Records an index (its files are written); returns the entry it replaced.
    pub(crate) async fn put_index(&self, entry: IndexEntry) -> Result<Option<IndexEntry>> {
        self.change(|doc| Ok(upsert(&mut doc.indexes, entry, |i| &i.name)))
            .await
    }

    /// Changes the entry of index `name` if it is still the build at `location` (a
    /// rebuild or drop in between wins); returns the updated entry, `None` if not.
    pub(crate) async fn update_index(
        &self,
        name: &str,
        location: &str,
        change: impl FnOnce(&mut IndexEntry),
    ) -> Result<Option<IndexEntry>> {
        self.change(|doc| {
            let found = doc
                .indexes
                .iter_mut()
                .find(|i| i.name == name && i.location == location);
            Ok(found.map(|entry| {
                change(entry);
                entry.clone()
            }))
        })
        .await
    }

    /// The one way the catalog changes: applies `change` to a copy of the document
    /// and publishes the result, in turn with every other catalog write. When
    /// `change` refuses, or changes nothing, nothing is written.
    pub(crate) async fn change<T, E: From<CatalogError>>(
        &self,
        change: impl FnOnce(&mut CatalogDocument) -> Result<T, E>,
    ) -> Result<T, E> {
        let _writer = self.writer.lock().await;
        let current = self.snapshot();
        let mut next = (*current).clone();
        let outcome = change(&mut next)?;
        if next != *current {
            self.publish(next).await?;
        }
        Ok(outcome)
    }

    /// The eval set `name`.
    pub(crate) fn eval_set(&self, name: &str) -> Option<EvalSetEntry> {
        self.snapshot()
            .eval_sets
            .iter()
            .find(|e| e.name == name)
            .cloned()
    }

    /// Records an eval set (its files are written); returns the entry it replaced.
    pub(crate) async fn put_eval_set(&self, entry: EvalSetEntry) -> Result<Option<EvalSetEntry>> {
        self.change(|doc| Ok(upsert(&mut doc.eval_sets, entry, |e| &e.name)))
            .await
    }

    /// Deletes the files of an eval set that is no longer recorded.
    pub(crate) async fn remove_eval_set_files(&self, entry: &EvalSetEntry) {
        self.delete_folder(&entry.bucket, &entry.location, &entry.name)
            .await;
    }

    /// Deletes the files of an index that is no longer recorded.
    pub(crate) async fn remove_index_files(&self, entry: &IndexEntry) {
        self.delete_folder(&entry.bucket, &entry.location, &entry.name)
            .await;
    }

    /// What the catalog keeps in `bucket`: tables there, indexes whose files are
    /// there or whose table is, eval sets whose files are there or whose index goes.
    pub(crate) fn in_bucket(&self, bucket: &str) -> BucketContents {
        contents_of(&self.snapshot(), bucket)
    }

    /// Unlists, in one change, everything [`Self::in_bucket`] finds for `bucket`
    /// (a forced bucket removal); the files are left where they are.
    pub(crate) async fn forget_bucket(&self, bucket: &str) -> Result<BucketContents> {
        self.change(|doc| {
            let gone = contents_of(doc, bucket);
            doc.tables
                .retain(|t| !gone.tables.contains(&t.qualified_name()));
            doc.indexes.retain(|i| !gone.indexes.contains(&i.name));
            doc.eval_sets.retain(|e| !gone.eval_sets.contains(&e.name));
            Ok(gone)
        })
        .await
    }
}
