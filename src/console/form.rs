//! Query strings and form bodies as `name → values` (repeated names kept: a list of
//! selected dead letters is `id=…&id=…`).

use std::collections::HashMap;

/// Decoded `application/x-www-form-urlencoded` pairs.
#[derive(Debug, Default, Clone)]
pub struct Fields(HashMap<String, Vec<String>>);

impl Fields {
    /// Parses a query string or a form body.
    pub fn parse(encoded: &str) -> Fields {
        let mut fields: HashMap<String, Vec<String>> = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(encoded.as_bytes()) {
            fields
                .entry(name.into_owned())
                .or_default()
                .push(value.into_owned());
        }
        Fields(fields)
    }

    /// The first value of `name`, trimmed; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .and_then(|values| values.first())
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every non-empty value of `name`, trimmed.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .get(name)
            .map(|values| {
                values
                    .iter()
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `pairs` as a query string (`a=1&b=x%20y`), empty values left out.
pub fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if !value.is_empty() {
            out.append_pair(name, &value);
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_are_kept_and_empty_values_dropped() {
        let fields = Fields::parse("id=a&id=b&note=+fixed%20it+&class=");
        assert_eq!(fields.all("id"), vec!["a", "b"]);
        assert_eq!(fields.get("note"), Some("fixed it"));
        assert_eq!(fields.get("class"), None);
        assert_eq!(
            query_string([("class", "x y".to_string()), ("dsp", String::new())]),
            "class=x+y"
        );
    }
}
