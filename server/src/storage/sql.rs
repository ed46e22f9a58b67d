//! Raw SQL helpers shared by the services that write their own statements:
//! numbered placeholders and the backend's placeholder syntax.

use sea_orm::{DbBackend, Statement, Value};

/// `rows` groups of `cols` numbered placeholders, `($1, $2), ($3, $4)`, for
/// multi-row `VALUES`; with `cols == 0`, one flat list `$1, $2, ...` of
/// `rows` for `IN (...)`.
pub fn placeholders(rows: usize, cols: usize) -> String {
    let mut out = String::new();
    let per = cols.max(1);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        if cols > 0 {
            out.push('(');
        }
        for c in 0..per {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", r * per + c + 1));
        }
        if cols > 0 {
            out.push(')');
        }
    }
    out
}

/// Turn `$1, $2...` into the backend's placeholders.
pub fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = if backend == DbBackend::Postgres {
        sql.to_string()
    } else {
        sql.replace('$', "?")
    };
    Statement::from_sql_and_values(backend, sql, values)
}
