//! Reading a trace in the Azure Functions 2019 format.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::Duration;

/// Duration of a function missing from `run.csv` when `run.csv` has no usable row to take the
/// median of: 1 s (the paper reports that half of the functions run for less than that on average).
pub const FALLBACK_DURATION: Duration = Duration::from_secs(1);

/// Memory of an application missing from `mem.csv` when `mem.csv` has no row to take the median
/// of: 128 MB (the smallest, and default, AWS Lambda memory size).
pub const FALLBACK_MEMORY_MB: f64 = 128.0;

/// A trace: applications, their functions, per-minute invocation counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// Length of the trace in minutes (the highest minute column of `inv.csv`).
    pub minutes: usize,
    /// In the order of their first function in `inv.csv`.
    pub apps: Vec<App>,
    /// Functions that had no row in `run.csv` and got the default duration.
    pub defaulted_durations: usize,
    /// Applications that had no row in `mem.csv` and got the default memory.
    pub defaulted_memory: usize,
}

/// An application: the unit that is loaded, kept alive and charged for memory.
#[derive(Clone, Debug, PartialEq)]
pub struct App {
    pub owner: String,
    pub name: String,
    /// `AverageAllocatedMb` from `mem.csv`.
    pub memory_mb: f64,
    pub functions: Vec<Function>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    pub name: String,
    /// Position of the function's row in `inv.csv` (0 = the first function).
    pub row: usize,
    /// `Average` execution time from `run.csv`.
    pub duration: Duration,
    /// Invocations started in each minute; `minutes` long.
    pub per_minute: Vec<u32>,
}

/// A trace that cannot be read; the line numbers are 1-based and count the header.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },
    #[error("{file}:{line}: {message}")]
    Malformed { file: String, line: usize, message: String },
}

impl Trace {
    /// Reads `inv.csv`, `run.csv` and `mem.csv` from `dir`.
    pub fn read_dir(dir: &Path) -> Result<Trace, TraceError> {
        let open = |name: &str| {
            let path = dir.join(name);
            let file = path.display().to_string();
            File::open(&path).map(|f| (f, file.clone())).map_err(|error| TraceError::Io { file, error })
        };
        let (inv, inv_name) = open("inv.csv")?;
        let (run, run_name) = open("run.csv")?;
        let (mem, mem_name) = open("mem.csv")?;
        Trace::parse((inv, &inv_name), (run, &run_name), (mem, &mem_name))
    }

    /// Reads the three files' contents; errors name them `inv.csv`, `run.csv` and `mem.csv`.
    ///
    /// - `inv.csv`: `HashOwner`, `HashApp`, `HashFunction` and one column per minute, named
    ///   `minute_<k>` or `<k>` (k from 1; the public trace uses the latter, its samples often the
    ///   former); other columns (`Trigger`) are ignored, columns may come in any order.
    /// - `run.csv`: `HashOwner`, `HashApp`, `HashFunction`, `Average` (ms). A function without a
    ///   row gets the median `Average` of the file's rows ([`FALLBACK_DURATION`] if none); rows for
    ///   functions not in `inv.csv` are ignored.
    /// - `mem.csv`: `HashOwner`, `HashApp`, `AverageAllocatedMb`. An application without a row
    ///   gets the median of the file's rows ([`FALLBACK_MEMORY_MB`] if none).
    ///
    /// Duplicate keys, missing columns, rows with the wrong number of fields and values that are
    /// not non-negative numbers are errors with the line number.
    pub fn from_readers(inv: impl Read, run: impl Read, mem: impl Read) -> Result<Trace, TraceError> {
        Trace::parse((inv, "inv.csv"), (run, "run.csv"), (mem, "mem.csv"))
    }

    fn parse(
        inv: (impl Read, &str),
        run: (impl Read, &str),
        mem: (impl Read, &str),
    ) -> Result<Trace, TraceError> {
        let durations = read_run(Csv::new(run.0, run.1)?)?;
        let memory = read_mem(Csv::new(mem.0, mem.1)?)?;
        read_inv(Csv::new(inv.0, inv.1)?, &durations, &memory)
    }

    /// Keeps only the first `n` functions of `inv.csv`, and the applications that still have one.
    pub fn keep_first_functions(&mut self, n: usize) {
        for app in &mut self.apps {
            app.functions.retain(|f| f.row < n);
        }
        self.apps.retain(|a| !a.functions.is_empty());
    }

    pub fn functions(&self) -> usize {
        self.apps.iter().map(|a| a.functions.len()).sum()
    }

    pub fn invocations(&self) -> u64 {
        self.apps.iter().flat_map(|a| &a.functions).flat_map(|f| &f.per_minute).map(|c| u64::from(*c)).sum()
    }
}

/// Reads one CSV file line by line; fields are split on commas, trimmed, and stripped of
/// surrounding double quotes (the trace's fields never contain commas).
struct Csv<R> {
    file: String,
    lines: std::io::Lines<BufReader<R>>,
    line: usize,
    header: Vec<String>,
}

impl<R: Read> Csv<R> {
    fn new(reader: R, file: &str) -> Result<Self, TraceError> {
        let mut csv =
            Csv { file: file.to_owned(), lines: BufReader::new(reader).lines(), line: 0, header: vec![] };
        match csv.next_row()? {
            Some(header) => csv.header = header,
            None => return Err(csv.error(1, "empty file: expected a header line".to_owned())),
        }
        Ok(csv)
    }

    fn next_row(&mut self) -> Result<Option<Vec<String>>, TraceError> {
        for line in self.lines.by_ref() {
            self.line += 1;
            let line = line.map_err(|error| TraceError::Io { file: self.file.clone(), error })?;
            let line = line.trim_start_matches('\u{feff}');
            if line.trim().is_empty() {
                continue;
            }
            return Ok(Some(line.split(',').map(|f| f.trim().trim_matches('"').to_owned()).collect()));
        }
        Ok(None)
    }

    /// The next row, which must have as many fields as the header.
    fn record(&mut self) -> Result<Option<Vec<String>>, TraceError> {
        let Some(row) = self.next_row()? else { return Ok(None) };
        if row.len() != self.header.len() {
            return Err(self.here(format!("{} fields, the header has {}", row.len(), self.header.len())));
        }
        Ok(Some(row))
    }

    fn column(&self, name: &str) -> Result<usize, TraceError> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| self.error(1, format!("no {name} column in the header")))
    }

    fn here(&self, message: String) -> TraceError {
        self.error(self.line, message)
    }

    fn error(&self, line: usize, message: String) -> TraceError {
        TraceError::Malformed { file: self.file.clone(), line, message }
    }

    fn number(&self, row: &[String], column: usize) -> Result<f64, TraceError> {
        let text = &row[column];
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
            _ => Err(self.here(format!("{}: {text:?} is not a non-negative number", self.header[column]))),
        }
    }
}

type FunctionKey = (String, String, String);
type AppKey = (String, String);

fn read_run(mut csv: Csv<impl Read>) -> Result<HashMap<FunctionKey, Duration>, TraceError> {
    let (owner, app, function, average) = (
        csv.column("HashOwner")?,
        csv.column("HashApp")?,
        csv.column("HashFunction")?,
        csv.column("Average")?,
    );
    let mut durations = HashMap::new();
    let mut lines = HashMap::new();
    while let Some(row) = csv.record()? {
        let ms = csv.number(&row, average)?;
        let key = (row[owner].clone(), row[app].clone(), row[function].clone());
        if let Some(first) = lines.insert(key.clone(), csv.line) {
            return Err(csv.here(format!("function {} again (first on line {first})", key.2)));
        }
        durations.insert(key, Duration::from_secs_f64(ms / 1000.0));
    }
    Ok(durations)
}

fn read_mem(mut csv: Csv<impl Read>) -> Result<HashMap<AppKey, f64>, TraceError> {
    let (owner, app, allocated) =
        (csv.column("HashOwner")?, csv.column("HashApp")?, csv.column("AverageAllocatedMb")?);
    let mut memory = HashMap::new();
    let mut lines = HashMap::new();
    while let Some(row) = csv.record()? {
        let mb = csv.number(&row, allocated)?;
        let key = (row[owner].clone(), row[app].clone());
        if let Some(first) = lines.insert(key.clone(), csv.line) {
            return Err(csv.here(format!("application {} again (first on line {first})", key.1)));
        }
        memory.insert(key, mb);
    }
    Ok(memory)
}

/// The minute a column counts (0-based), if it is one: `minute_<k>` or `<k>`, k ≥ 1.
fn minute_column(name: &str) -> Option<usize> {
    let k: usize = name.strip_prefix("minute_").unwrap_or(name).parse().ok()?;
    k.checked_sub(1)
}

fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

fn read_inv(
    mut csv: Csv<impl Read>,
    durations: &HashMap<FunctionKey, Duration>,
    memory: &HashMap<AppKey, f64>,
) -> Result<Trace, TraceError> {
    let (owner, app, function) =
        (csv.column("HashOwner")?, csv.column("HashApp")?, csv.column("HashFunction")?);
    let mut minute_columns = Vec::new(); // (column, minute)
    let mut seen = HashMap::new();
    for (column, name) in csv.header.iter().enumerate() {
        if let Some(minute) = minute_column(name) {
            if let Some(other) = seen.insert(minute, column) {
                let message =
                    format!("minute {} appears in columns {} and {}", minute + 1, other + 1, column + 1);
                return Err(csv.error(1, message));
            }
            minute_columns.push((column, minute));
        }
    }
    let Some(minutes) = minute_columns.iter().map(|(_, m)| m + 1).max() else {
        return Err(csv.error(1, "no minute columns (minute_1, minute_2, … or 1, 2, …) in the header".into()));
    };
    let default_duration = median(durations.values().map(Duration::as_secs_f64))
        .map_or(FALLBACK_DURATION, Duration::from_secs_f64);
    let default_memory = median(memory.values().copied()).unwrap_or(FALLBACK_MEMORY_MB);

    let mut trace = Trace { minutes, apps: vec![], defaulted_durations: 0, defaulted_memory: 0 };
    let mut app_index: HashMap<AppKey, usize> = HashMap::new();
    let mut lines: HashMap<FunctionKey, usize> = HashMap::new();
    while let Some(row) = csv.record()? {
        let key = (row[owner].clone(), row[app].clone(), row[function].clone());
        if key.0.is_empty() || key.1.is_empty() || key.2.is_empty() {
            return Err(csv.here("empty HashOwner, HashApp or HashFunction".into()));
        }
        if let Some(first) = lines.insert(key.clone(), csv.line) {
            return Err(csv.here(format!("function {} again (first on line {first})", key.2)));
        }
        let mut per_minute = vec![0u32; minutes];
        for &(column, minute) in &minute_columns {
            let text = &row[column];
            per_minute[minute] = text.parse().map_err(|_| {
                csv.here(format!("{}: {text:?} is not an invocation count", csv.header[column]))
            })?;
        }
        let duration = durations.get(&key).copied().unwrap_or_else(|| {
            trace.defaulted_durations += 1;
            default_duration
        });
        let app_key = (key.0.clone(), key.1.clone());
        let index = *app_index.entry(app_key.clone()).or_insert_with(|| {
            let memory_mb = memory.get(&app_key).copied().unwrap_or_else(|| {
                trace.defaulted_memory += 1;
                default_memory
            });
            trace.apps.push(App { owner: key.0.clone(), name: key.1.clone(), memory_mb, functions: vec![] });
            trace.apps.len() - 1
        });
        let row = lines.len() - 1;
        trace.apps[index].functions.push(Function { name: key.2, row, duration, per_minute });
    }
    Ok(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(inv: &str, run: &str, mem: &str) -> Result<Trace, TraceError> {
        Trace::from_readers(inv.as_bytes(), run.as_bytes(), mem.as_bytes())
    }

    fn error(inv: &str, run: &str, mem: &str) -> String {
        parse(inv, run, mem).unwrap_err().to_string()
    }

    const RUN: &str = "HashFunction,HashApp,HashOwner,Count,Average,Minimum,Maximum\n\
                       f1,a1,o1,3,1500,1000,2000\n\
                       f2,a1,o1,1,500,500,500\n\
                       f9,a9,o9,1,250,250,250\n";
    const MEM: &str = "HashApp,HashOwner,SampleCount,AverageAllocatedMb\na1,o1,10,256\n";

    #[test]
    fn reads_the_three_files_and_groups_functions_by_app() {
        let inv = "HashFunction,HashApp,HashOwner,minute_1,minute_2,minute_3\n\
                   f1,a1,o1,1,0,2\r\n\
                   f3,a2,o2,0,0,1\n\
                   f2,a1,o1,0,5,0\n\n";
        let trace = parse(inv, RUN, MEM).unwrap();
        assert_eq!(trace.minutes, 3);
        assert_eq!(trace.functions(), 3);
        assert_eq!(trace.invocations(), 9);
        assert_eq!(trace.apps.len(), 2);
        let a1 = &trace.apps[0];
        assert_eq!((a1.owner.as_str(), a1.name.as_str(), a1.memory_mb), ("o1", "a1", 256.0));
        assert_eq!(a1.functions[0].per_minute, [1, 0, 2]);
        assert_eq!(a1.functions[0].duration, Duration::from_millis(1500));
        assert_eq!((a1.functions[1].name.as_str(), a1.functions[1].row), ("f2", 2));
        assert_eq!(a1.functions[1].duration, Duration::from_millis(500));
        // f3 is not in run.csv: the median of the three Averages; a2 not in mem.csv: the median (256).
        let a2 = &trace.apps[1];
        assert_eq!(a2.functions[0].duration, Duration::from_millis(500));
        assert_eq!(a2.memory_mb, 256.0);
        assert_eq!((trace.defaulted_durations, trace.defaulted_memory), (1, 1));

        let mut first_two = trace.clone();
        first_two.keep_first_functions(2);
        assert_eq!(first_two.functions(), 2);
        assert_eq!(first_two.apps[0].functions.len(), 1);
        assert_eq!(first_two.apps[1].functions[0].name, "f3");
    }

    #[test]
    fn defaults_without_any_durations_or_memory() {
        let inv = "HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,0,1\n";
        let trace =
            parse(inv, "HashOwner,HashApp,HashFunction,Average\n", "HashOwner,HashApp,AverageAllocatedMb\n")
                .unwrap();
        assert_eq!(trace.apps[0].memory_mb, FALLBACK_MEMORY_MB);
        assert_eq!(trace.apps[0].functions[0].duration, FALLBACK_DURATION);
        assert_eq!(trace.apps[0].functions[0].per_minute, [0, 1], "the public trace's column names");
    }

    #[test]
    fn minute_columns_may_be_out_of_order() {
        let inv = "HashOwner,minute_2,HashApp,minute_1,HashFunction\no,7,a,3,f\n";
        let trace = parse(inv, RUN, MEM).unwrap();
        assert_eq!(trace.apps[0].functions[0].per_minute, [3, 7]);
    }

    #[test]
    fn malformed_files_are_reported_with_their_line() {
        let header = "HashFunction,HashApp,HashOwner,minute_1,minute_2\n";
        let e = error(&format!("{header}f1,a1,o1,1,2\nf2,a1,o1,1\n"), RUN, MEM);
        assert_eq!(e, "inv.csv:3: 4 fields, the header has 5");
        let e = error(&format!("{header}f1,a1,o1,1,x\n"), RUN, MEM);
        assert_eq!(e, "inv.csv:2: minute_2: \"x\" is not an invocation count");
        let e = error(&format!("{header}f1,a1,o1,1,-1\n"), RUN, MEM);
        assert!(e.starts_with("inv.csv:2: minute_2"), "{e}");
        let e = error(&format!("{header}f1,a1,o1,1,2\n\nf1,a1,o1,0,0\n"), RUN, MEM);
        assert_eq!(e, "inv.csv:4: function f1 again (first on line 2)");
        let e = error(&format!("{header},a1,o1,1,2\n"), RUN, MEM);
        assert_eq!(e, "inv.csv:2: empty HashOwner, HashApp or HashFunction");
        assert_eq!(error("", RUN, MEM), "inv.csv:1: empty file: expected a header line");
        let e = error("HashFunction,HashApp,HashOwner,Trigger\n", RUN, MEM);
        assert!(e.starts_with("inv.csv:1: no minute columns"), "{e}");
        let e = error("HashFunction,HashApp,minute_1\n", RUN, MEM);
        assert_eq!(e, "inv.csv:1: no HashOwner column in the header");
        let e = error("HashFunction,HashApp,HashOwner,1,minute_1\n", RUN, MEM);
        assert_eq!(e, "inv.csv:1: minute 1 appears in columns 4 and 5");

        let inv = format!("{header}f1,a1,o1,1,2\n");
        let e = error(&inv, "HashFunction,HashApp,HashOwner,Count\n", MEM);
        assert_eq!(e, "run.csv:1: no Average column in the header");
        let e = error(&inv, "HashFunction,HashApp,HashOwner,Average\nf1,a1,o1,fast\n", MEM);
        assert_eq!(e, "run.csv:2: Average: \"fast\" is not a non-negative number");
        let e = error(&inv, "HashFunction,HashApp,HashOwner,Average\nf1,a1,o1,1\nf1,a1,o1,2\n", MEM);
        assert_eq!(e, "run.csv:3: function f1 again (first on line 2)");
        let e = error(&inv, RUN, "HashApp,HashOwner,AverageAllocatedMb\na1,o1,NaN\n");
        assert_eq!(e, "mem.csv:2: AverageAllocatedMb: \"NaN\" is not a non-negative number");
        let e = error(&inv, RUN, "HashApp,HashOwner,AverageAllocatedMb\na1,o1\n");
        assert_eq!(e, "mem.csv:2: 2 fields, the header has 3");
    }

    #[test]
    fn a_missing_directory_names_the_file() {
        let e = Trace::read_dir(Path::new("/nonexistent/trace")).unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/trace/inv.csv: "), "{e}");
    }
}
