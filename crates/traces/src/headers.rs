use crate::TraceError;

/// Parses `OTEL_EXPORTER_OTLP_HEADERS`: `key1=value1,key2=value2`, keys and values trimmed and
/// percent-decoded (a `+` stays a `+`: the format is W3C Baggage's, not a form's). Empty entries
/// are skipped, so a trailing comma is harmless.
pub fn parse_headers(s: &str) -> Result<Vec<(String, String)>, TraceError> {
    let mut headers = Vec::new();
    for entry in s.split(',') {
        if entry.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            return Err(invalid(format!("{:?} is not key=value", entry.trim())));
        };
        let key = decode(key.trim())?;
        let value = decode(value.trim())?;
        if key.is_empty() {
            return Err(invalid(format!("{:?} has an empty key", entry.trim())));
        }
        // Checked here rather than at the first export, so a bad variable fails `yun up`.
        if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
            return Err(invalid(format!("{key:?} is not a valid header name")));
        }
        if http::HeaderValue::from_str(&value).is_err() {
            return Err(invalid(format!("the value of {key:?} is not a valid header value")));
        }
        headers.push((key, value));
    }
    Ok(headers)
}

fn decode(s: &str) -> Result<String, TraceError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| invalid(format!("{s:?} is not UTF-8 once percent-decoded")))
}

fn invalid(reason: String) -> TraceError {
    TraceError::Headers { reason }
}

#[cfg(test)]
mod tests {
    use super::parse_headers;

    fn pairs(s: &str) -> Vec<(String, String)> {
        parse_headers(s).unwrap()
    }

    fn owned(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn pairs_are_split_trimmed_and_decoded() {
        assert_eq!(
            pairs("api-key=secret, x-tenant = acme ,authorization=Basic%20dXNlcjpwYXNz"),
            owned(&[("api-key", "secret"), ("x-tenant", "acme"), ("authorization", "Basic dXNlcjpwYXNz"),])
        );
    }

    #[test]
    fn a_value_keeps_its_equals_signs_and_plus_signs() {
        assert_eq!(pairs("k=a=b=="), owned(&[("k", "a=b==")]));
        assert_eq!(pairs("k=a+b"), owned(&[("k", "a+b")]));
        assert_eq!(pairs("k=%2C%3D"), owned(&[("k", ",=")]));
    }

    #[test]
    fn empty_input_and_empty_entries_are_nothing() {
        assert_eq!(pairs(""), owned(&[]));
        assert_eq!(pairs(" , ,"), owned(&[]));
        assert_eq!(pairs("a=1,"), owned(&[("a", "1")]));
        assert_eq!(pairs("a="), owned(&[("a", "")]));
    }

    #[test]
    fn malformed_entries_are_errors() {
        for bad in ["novalue", "a=1,b", "=v", " =v", "bad key=v", "k=%FF", "k=line%0Abreak"] {
            let err = parse_headers(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid OTLP headers"), "{bad:?}: {err}");
        }
    }
}
