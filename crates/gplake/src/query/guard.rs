//! `gplake query` is read-only: a statement is planned (never executed) and refused, naming
//! its kind, if anything in its plan would write, define, or change the session — INSERT,
//! UPDATE, DELETE, COPY, CREATE, DROP, SET, also when wrapped in a CTE or EXPLAIN ANALYZE.
//! DataFusion's own `SQLOptions` then refuse the same again when the query runs, so a
//! statement the planner names differently still cannot write.

use deltalake::datafusion::common::tree_node::TreeNodeRecursion;
use deltalake::datafusion::execution::context::SQLOptions;
use deltalake::datafusion::logical_expr::{LogicalPlan, WriteOp};
use deltalake::datafusion::prelude::SessionContext;
use deltalake::datafusion::sql::parser::{DFParser, Statement as DFStatement};
use deltalake::datafusion::sql::sqlparser::ast::{SetExpr, Statement};

use super::QueryError;

/// The options every query runs under: no DDL, no DML, no statements.
pub(crate) fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Refuses `sql` unless it is one read-only statement. SQL that does not parse or plan is
/// let through: running it reports the engine's error with the tables that exist.
pub(crate) async fn check(ctx: &SessionContext, sql: &str) -> Result<(), QueryError> {
    let Ok(mut statements) = DFParser::parse_sql(sql) else {
        return Ok(());
    };
    if statements.len() > 1 {
        return Err(QueryError::Refused {
            statement: format!("more than one statement ({})", statements.len()),
        });
    }
    let Some(statement) = statements.pop_front() else {
        return Ok(());
    };
    if let Some(statement) = writing_query(&statement) {
        return Err(QueryError::Refused { statement });
    }
    let Ok(plan) = ctx.state().statement_to_plan(statement).await else {
        return Ok(());
    };
    match writer_in(&plan) {
        Some(statement) => Err(QueryError::Refused { statement }),
        None => Ok(()),
    }
}

/// A query whose body writes (`WITH … INSERT`), which the planner may not even plan.
fn writing_query(statement: &DFStatement) -> Option<String> {
    let DFStatement::Statement(statement) = statement else {
        return None;
    };
    let Statement::Query(query) = statement.as_ref() else {
        return None;
    };
    match query.body.as_ref() {
        SetExpr::Insert(_) => Some("INSERT".into()),
        SetExpr::Update(_) => Some("UPDATE".into()),
        SetExpr::Delete(_) => Some("DELETE".into()),
        SetExpr::Merge(_) => Some("MERGE".into()),
        _ => None,
    }
}

/// The first node of `plan` (subqueries included) that is not a plain read, named.
fn writer_in(plan: &LogicalPlan) -> Option<String> {
    let mut found = None;
    let _ = plan.apply_with_subqueries(|node| {
        found = name(node);
        Ok(if found.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

fn name(node: &LogicalPlan) -> Option<String> {
    match node {
        LogicalPlan::Dml(dml) => Some(
            match &dml.op {
                WriteOp::Insert(_) => "INSERT",
                WriteOp::Delete => "DELETE",
                WriteOp::Update => "UPDATE",
                WriteOp::Ctas => "CREATE TABLE AS",
                WriteOp::Truncate => "TRUNCATE",
                _ => "MERGE",
            }
            .to_string(),
        ),
        LogicalPlan::Copy(_) => Some("COPY".into()),
        LogicalPlan::Ddl(ddl) => Some(words(ddl.name())),
        LogicalPlan::Statement(s) if s.name() == "SetVariable" => Some("SET".into()),
        LogicalPlan::Statement(s) => Some(words(s.name())),
        _ => None,
    }
}

/// `CreateExternalTable` → `CREATE EXTERNAL TABLE`.
fn words(camel: &str) -> String {
    let mut out = String::new();
    for c in camel.chars() {
        if c.is_ascii_uppercase() && !out.is_empty() {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_names_read_as_sql() {
        assert_eq!(words("CreateExternalTable"), "CREATE EXTERNAL TABLE");
        assert_eq!(words("DropView"), "DROP VIEW");
    }
}
