//! Turning a cron expression into a `croner::Cron`, with errors that name the field at fault.
//!
//! croner decides what is valid; this module only adds the field name and a specific message
//! (croner's own say "Number out of bounds." without saying where). The one rule added on top
//! of croner: month and weekday names are accepted only in their own field, because croner
//! substitutes them anywhere, so `0 0 * MON *` would silently mean January.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::CronError;

/// The shorthands croner expands. Anything else starting with `@` (such as `@every 5m`, which
/// croner does not support) is rejected with this list.
const SHORTHANDS: [&str; 6] = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"];

const MONTHS: [&str; 12] =
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Seconds,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    /// Fields in order for the 6-field form; the 5-field form is the same without seconds.
    const ALL: [Field; 6] =
        [Field::Seconds, Field::Minute, Field::Hour, Field::DayOfMonth, Field::Month, Field::DayOfWeek];

    fn name(self) -> &'static str {
        match self {
            Field::Seconds => "seconds",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day of month",
            Field::Month => "month",
            Field::DayOfWeek => "day of week",
        }
    }

    fn bounds(self) -> (u16, u16) {
        match self {
            Field::Seconds | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            // 0 and 7 are both Sunday.
            Field::DayOfWeek => (0, 7),
        }
    }

    /// Position in the 6-field layout croner is given.
    fn slot(self) -> usize {
        self as usize
    }

    fn hint(self) -> &'static str {
        match self {
            Field::Month => "use 1-12 or JAN-DEC",
            Field::DayOfWeek => "use 0-7 (0 and 7 are Sunday) or SUN-SAT",
            Field::DayOfMonth => "use 1-31, L (last day) or a W suffix (nearest weekday)",
            Field::Seconds | Field::Minute => "use numbers 0-59",
            Field::Hour => "use numbers 0-23",
        }
    }
}

fn parser() -> CronParser {
    // 6 fields means seconds first; a 7th (year) field is not part of yun's syntax.
    CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build()
}

fn error(expression: &str, field: &str, message: impl Into<String>) -> CronError {
    CronError::Expression {
        expression: expression.to_string(),
        field: field.to_string(),
        message: message.into(),
    }
}

/// croner's message without its "Component error:" style prefix or trailing full stop.
fn croner_message(err: &croner::errors::CronError) -> String {
    use croner::errors::CronError as E;
    let text = match err {
        E::ComponentError(msg) | E::InvalidPattern(msg) | E::IllegalCharacters(msg) => msg.clone(),
        other => other.to_string(),
    };
    text.trim_end_matches('.').to_string()
}

pub(crate) fn parse(expression: &str) -> Result<Cron, CronError> {
    let trimmed = expression.trim();
    if trimmed.is_empty() {
        return Err(error(
            expression,
            "expression",
            "it is empty; write 5 fields (minute hour day-of-month month day-of-week), \
             6 with seconds first, or a shorthand such as @daily",
        ));
    }
    if trimmed.starts_with('@') {
        if !SHORTHANDS.iter().any(|s| s.eq_ignore_ascii_case(trimmed)) {
            return Err(error(
                expression,
                "expression",
                format!("unknown shorthand {trimmed:?}; use one of {}", SHORTHANDS.join(", ")),
            ));
        }
        return parser().parse(trimmed).map_err(|e| error(expression, "expression", croner_message(&e)));
    }

    let parts: Vec<&str> = trimmed.split_whitespace().collect();
    let fields: &[Field] = match parts.len() {
        5 => &Field::ALL[1..],
        6 => &Field::ALL,
        n => {
            return Err(error(
                expression,
                "expression",
                format!(
                    "it has {n} field{}; expected 5 (minute hour day-of-month month day-of-week) \
                     or 6 (seconds first)",
                    if n == 1 { "" } else { "s" }
                ),
            ));
        }
    };

    for (&field, &text) in fields.iter().zip(&parts) {
        check_field(field, text).map_err(|message| error(expression, field.name(), message))?;
    }

    // Every field passed on its own, so a failure here is about the whole; croner has no such
    // check today, but its message is better than none.
    parser().parse(trimmed).map_err(|e| error(expression, "expression", croner_message(&e)))
}

/// Validates one field: names in their own field only, then croner on that field alone
/// (every other field a wildcard), with a specific message when croner rejects it.
fn check_field(field: Field, text: &str) -> Result<(), String> {
    check_names(field, text)?;
    // croner reads "," or a bare "+" as matching nothing; that would surface later as a
    // schedule that never fires, blamed on the wrong field.
    let body = if field == Field::DayOfWeek { text.strip_prefix('+').unwrap_or(text) } else { text };
    if body.split(',').all(str::is_empty) {
        return Err(format!("{text:?} has no values; {}", field.hint()));
    }
    let mut probe = ["0", "*", "*", "*", "*", "*"];
    probe[field.slot()] = text;
    match parser().parse(&probe.join(" ")) {
        Ok(_) => Ok(()),
        Err(e) => Err(diagnose(field, text).unwrap_or_else(|| croner_message(&e))),
    }
}

fn check_names(field: Field, text: &str) -> Result<(), String> {
    let upper = text.to_ascii_uppercase();
    for word in upper.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| !w.is_empty()) {
        let ok = match field {
            Field::Month => MONTHS.contains(&word),
            // `L` alone is "last", and `FRIL` is "last Friday", as `5L` is.
            Field::DayOfWeek => {
                word == "L"
                    || WEEKDAYS.contains(&word)
                    || word.strip_suffix('L').is_some_and(|w| WEEKDAYS.contains(&w))
            }
            Field::DayOfMonth => matches!(word, "L" | "W" | "LW"),
            Field::Seconds | Field::Minute | Field::Hour => false,
        };
        if !ok {
            return Err(format!("{word:?} is not allowed here; {}", field.hint()));
        }
    }
    Ok(())
}

/// Finds the first entry of a field that croner rejected and says what is wrong with it.
/// Best effort: `None` leaves croner's own message.
fn diagnose(field: Field, text: &str) -> Option<String> {
    let (min, max) = field.bounds();
    let upper = text.to_ascii_uppercase();
    let body = if field == Field::DayOfWeek { upper.strip_prefix('+').unwrap_or(&upper) } else { &upper };
    for item in body.split(',').filter(|i| !i.is_empty()) {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            match step.parse::<u16>() {
                Err(_) => return Some(format!("step {step:?} in {item:?} is not a number")),
                Ok(0) => return Some(format!("step 0 in {item:?} never advances; use 1 or more")),
                Ok(_) => {}
            }
            if range.is_empty() {
                return Some(format!("{item:?} has no start; write \"*/{step}\""));
            }
            if range != "*" && !range.contains('-') {
                return Some(format!(
                    "{item:?} is not allowed; write \"*/{step}\" or \"{range}-{max}/{step}\""
                ));
            }
        }
        if range == "*" {
            continue;
        }
        let core = match field {
            Field::DayOfWeek => {
                let (core, nth) = match range.split_once('#') {
                    Some((core, nth)) => (core, Some(nth)),
                    None => (range, None),
                };
                if let Some(nth) = nth
                    && !matches!(nth.parse::<u8>(), Ok(1..=5))
                {
                    return Some(format!("\"#{nth}\" in {item:?}: the nth weekday must be 1-5"));
                }
                if core == "L" {
                    continue;
                }
                core.strip_suffix('L').unwrap_or(core)
            }
            Field::DayOfMonth => {
                if range == "L" || range == "LW" {
                    continue;
                }
                range.strip_suffix('W').unwrap_or(range)
            }
            _ => range,
        };
        let (start, end) = match core.split_once('-') {
            Some((start, end)) => (start, Some(end)),
            None => (core, None),
        };
        let start = match value(field, item, start, false) {
            Ok(v) => v,
            Err(message) => return Some(message),
        };
        if start < min || start > max {
            return Some(format!("{start} is out of range {min}-{max}"));
        }
        if let Some(end) = end {
            let end = match value(field, item, end, true) {
                Ok(v) => v,
                Err(message) => return Some(message),
            };
            if end < min || end > max {
                return Some(format!("{end} is out of range {min}-{max}"));
            }
            if start > end {
                return Some(format!("range {start}-{end} runs backwards; write the smaller value first"));
            }
        }
    }
    None
}

/// A field value as a number: digits, or a month or weekday name in its own field. SUN ends a
/// weekday range as 7, as croner reads it, so `MON-SUN` is not "backwards".
fn value(field: Field, item: &str, text: &str, range_end: bool) -> Result<u16, String> {
    if let Ok(n) = text.parse::<u16>() {
        return Ok(n);
    }
    let names: &[&str] = match field {
        Field::Month => &MONTHS,
        Field::DayOfWeek => &WEEKDAYS,
        _ => &[],
    };
    match names.iter().position(|n| *n == text) {
        Some(0) if field == Field::DayOfWeek && range_end => Ok(7),
        Some(i) if field == Field::Month => Ok(i as u16 + 1),
        Some(i) => Ok(i as u16),
        None if text.is_empty() => Err(format!("{item:?} is missing a number; {}", field.hint())),
        None => Err(format!("{text:?} is not a valid value; {}", field.hint())),
    }
}
