//! `lakehouse sql`: one-shot statements (`-c`, `-f`) and the interactive prompt
//! (history, multi-line statements ended by `;`, backslash commands, Ctrl-C cancels
//! the running query).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{Config, Editor};

use super::client::{CliError, Client, info_schema};
use super::output::{Format, Sink};

/// Flags of `lakehouse sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Run these statements and exit (repeatable; `;` also separates statements).
    #[arg(short = 'c', long = "command")]
    pub commands: Vec<String>,
    /// Run the statements of this file and exit (`-` reads standard input).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write results to this file instead of standard output (needed for parquet).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Rows the table format shows at most.
    #[arg(long, default_value_t = 1000)]
    pub max_rows: usize,
    /// Leave out the "N rows in T s" line.
    #[arg(long)]
    pub no_timing: bool,
    /// Keep going after a statement fails (one-shot mode).
    #[arg(long)]
    pub keep_going: bool,
}

/// Splits SQL text into statements at `;` outside quotes and comments; the tail
/// without a `;` is returned separately (an unfinished statement at the prompt).
pub(crate) fn split_statements(text: &str) -> (Vec<String>, String) {
    #[derive(PartialEq)]
    enum In {
        Code,
        Single,
        Double,
        Line,
        Block,
    }
    let mut state = In::Code;
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            In::Code => match c {
                '\'' => state = In::Single,
                '"' => state = In::Double,
                '-' if chars.peek() == Some(&'-') => state = In::Line,
                '/' if chars.peek() == Some(&'*') => state = In::Block,
                ';' => {
                    let statement = current.trim();
                    if !statement.is_empty() {
                        statements.push(statement.to_string());
                    }
                    current.clear();
                    continue;
                }
                _ => {}
            },
            In::Single if c == '\'' => state = In::Code,
            In::Double if c == '"' => state = In::Code,
            In::Line if c == '\n' => state = In::Code,
            In::Block if c == '*' && chars.peek() == Some(&'/') => {
                current.push(c);
                if let Some(slash) = chars.next() {
                    current.push(slash);
                }
                state = In::Code;
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    (statements, current)
}

/// Whether `text` holds nothing but white space and comments.
fn only_comments(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with("--"))
}

/// Runs one statement and prints its result; Ctrl-C cancels it on the server.
pub(crate) async fn run_statement(
    client: &mut Client,
    sql: &str,
    sink: &Sink,
    timing: bool,
) -> Result<(), CliError> {
    let started = Instant::now();
    let mut interrupts = super::progress::Interrupts::new()?;
    let run = async {
        let info = client.plan(sql).await?;
        let schema = info_schema(&info)?;
        let batches = client.fetch(&info).await?;
        Ok::<_, CliError>((info, schema, batches))
    };
    let (info, schema, batches) = tokio::select! {
        planned = run => planned?,
        () = interrupts.next() => {
            return Err(CliError::local("query interrupted before it started"));
        }
    };
    let written = tokio::select! {
        written = sink.write(schema, Box::pin(batches)) => written?,
        () = interrupts.next() => {
            // Tell the server to stop working on it, then report.
            let note = match client.cancel(info).await {
                Ok(()) => "cancelled on the server",
                Err(_) => "the server could not be told",
            };
            return Err(CliError::local(format!("query interrupted ({note})")));
        }
    };
    if timing {
        let seconds = started.elapsed().as_secs_f64();
        let rows = if written == 1 { "row" } else { "rows" };
        // With data on standard output, the timing goes to standard error.
        if sink.format == Format::Table || sink.output.is_some() {
            println!("({written} {rows} in {seconds:.3} s)");
        } else {
            eprintln!("({written} {rows} in {seconds:.3} s)");
        }
    }
    Ok(())
}

/// `lakehouse sql` without `-c`/`-f` on a terminal: the prompt. With `-c`/`-f`, or
/// statements on standard input, runs them in order.
pub(crate) async fn run(client: &mut Client, args: SqlArgs) -> Result<(), CliError> {
    let sink = Sink {
        format: args.format,
        output: args.output.clone(),
        max_rows: args.max_rows,
    };
    let mut script = String::new();
    for command in &args.commands {
        script.push_str(command);
        script.push_str(";\n");
    }
    match &args.file {
        Some(path) if path.as_os_str() == "-" => {
            script.push_str(
                &std::io::read_to_string(std::io::stdin())
                    .map_err(|e| CliError::local(format!("reading standard input: {e}")))?,
            );
        }
        Some(path) => script.push_str(
            &std::fs::read_to_string(path)
                .map_err(|e| CliError::local(format!("cannot read {}: {e}", path.display())))?,
        ),
        None if args.commands.is_empty() && !std::io::stdin().is_terminal() => {
            script.push_str(
                &std::io::read_to_string(std::io::stdin())
                    .map_err(|e| CliError::local(format!("reading standard input: {e}")))?,
            );
        }
        None if args.commands.is_empty() => return prompt(client, sink, !args.no_timing).await,
        None => {}
    }
    let (mut statements, tail) = split_statements(&script);
    if !only_comments(&tail) {
        statements.push(tail.trim().to_string());
    }
    let mut first_error = None;
    for statement in statements {
        if let Err(error) = run_statement(client, &statement, &sink, !args.no_timing).await {
            if !args.keep_going {
                return Err(error);
            }
            eprintln!("{error}");
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

const HELP: &str = "\
Statements end with ';' and may span lines. Ctrl-C cancels a running query or clears
the input; Ctrl-D (or \\q) quits.
  \\d              list tables
  \\d NAME         columns of a table
  \\format FORMAT  table, csv, json or ndjson
  \\timing         toggle the timing line
  \\q              quit";

fn history_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("LAKEHOUSE_HISTORY") {
        return Some(PathBuf::from(path));
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state"))
        })?;
    Some(base.join("lakehouse").join("history"))
}

/// The interactive prompt.
async fn prompt(client: &mut Client, mut sink: Sink, mut timing: bool) -> Result<(), CliError> {
    let config = Config::builder().auto_add_history(false).build();
    let mut editor: Editor<(), FileHistory> = Editor::with_config(config)
        .map_err(|e| CliError::local(format!("cannot start the prompt: {e}")))?;
    let history = history_file();
    if let Some(path) = &history {
        // A missing history file is normal the first time.
        let _ = editor.load_history(path);
    }
    println!("lakehouse sql: statements end with ';', \\? for help, \\q to quit");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "lakehouse> "
        } else {
            "       ...> "
        };
        let line = match tokio::task::block_in_place(|| editor.readline(prompt)) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(CliError::local(format!("reading input: {e}"))),
        };
        if buffer.is_empty() && line.trim_start().starts_with('\\') {
            let _ = editor.add_history_entry(line.trim());
            match meta(client, line.trim(), &mut sink, &mut timing).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(error) => eprintln!("{error}"),
            }
            continue;
        }
        if !buffer.is_empty() {
            buffer.push('\n');
        }
        buffer.push_str(&line);
        let (statements, tail) = split_statements(&buffer);
        if statements.is_empty() {
            if only_comments(&tail) && tail.trim().is_empty() {
                buffer.clear();
            }
            continue;
        }
        let _ = editor.add_history_entry(buffer.trim());
        buffer = if only_comments(&tail) {
            String::new()
        } else {
            tail
        };
        for statement in statements {
            if let Err(error) = run_statement(client, &statement, &sink, timing).await {
                eprintln!("{error}");
            }
        }
    }
    if let Some(path) = &history {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = editor.save_history(path) {
            eprintln!(
                "note: could not save the history to {}: {e}",
                path.display()
            );
        }
    }
    Ok(())
}

/// A backslash command; `Ok(true)` quits.
async fn meta(
    client: &mut Client,
    line: &str,
    sink: &mut Sink,
    timing: &mut bool,
) -> Result<bool, CliError> {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or_default();
    let argument = words.next();
    match (command, argument) {
        ("\\q" | "\\quit", _) => return Ok(true),
        ("\\?" | "\\h" | "\\help", _) => println!("{HELP}"),
        ("\\d", None) => {
            let sql = "SELECT table_schema AS schema, table_name AS name, table_type AS type \
                       FROM information_schema.tables \
                       WHERE table_schema NOT IN ('information_schema') \
                       ORDER BY table_schema, table_name";
            run_statement(client, sql, sink, false).await?;
        }
        ("\\d", Some(table)) => {
            let (schema, name) = table.split_once('.').unwrap_or(("public", table));
            let sql = format!(
                "SELECT column_name AS column, data_type AS type, is_nullable AS nullable \
                 FROM information_schema.columns \
                 WHERE table_schema = '{}' AND table_name = '{}' ORDER BY ordinal_position",
                schema.replace('\'', "''"),
                name.replace('\'', "''")
            );
            run_statement(client, &sql, sink, false).await?;
        }
        ("\\format", Some(name)) => match Format::parse(name) {
            Some(Format::Parquet) | None => {
                return Err(CliError::local(format!(
                    "\\format {name}: use table, csv, json or ndjson"
                )));
            }
            Some(format) => {
                sink.format = format;
                println!("format: {name}");
            }
        },
        ("\\timing", _) => {
            *timing = !*timing;
            println!("timing: {}", if *timing { "on" } else { "off" });
        }
        _ => {
            return Err(CliError::local(format!(
                "unknown command {command}; \\? lists them"
            )));
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        let (statements, tail) =
            split_statements("SELECT 'a;b'; SELECT \"x;\" -- c;\n FROM t; /* ; */ SELECT 3");
        assert_eq!(
            statements,
            vec!["SELECT 'a;b'", "SELECT \"x;\" -- c;\n FROM t"]
        );
        assert_eq!(tail.trim(), "/* ; */ SELECT 3");
        let (statements, tail) = split_statements("SELECT 1;;\n");
        assert_eq!(statements, vec!["SELECT 1"]);
        assert!(only_comments(&tail));
        let (statements, tail) = split_statements("SELECT 'open;\n");
        assert!(statements.is_empty());
        assert!(!only_comments(&tail));
    }
}
