//! The shape of a template's data: which names exist at which path. Built
//! from sample data (generated clients, the campaign's real content), it
//! lets the template checker find a misspelt name that rendering would only
//! reveal for some clients, or never inside an `{{#if}}`.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Nothing known: anything below is accepted.
    Any,
    /// A string, number, boolean or null: has no names below it.
    Scalar,
    /// An object whose keys are known.
    Object(BTreeMap<String, Shape>),
    /// An object whose keys are free (client attributes): any name is
    /// accepted and renders empty when absent.
    Open,
    Array(Box<Shape>),
}

impl Shape {
    /// The shape of one sample value. Objects at `open_paths` (e.g.
    /// `client.attrs`) stay open.
    pub fn of(value: &Value, open_paths: &[&str]) -> Shape {
        Self::at(value, "", open_paths)
    }

    fn at(value: &Value, path: &str, open_paths: &[&str]) -> Shape {
        match value {
            Value::Object(_) if open_paths.contains(&path) => Shape::Open,
            Value::Object(m) => Shape::Object(
                m.iter()
                    .map(|(k, v)| {
                        let p = if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}.{k}")
                        };
                        (k.clone(), Self::at(v, &p, open_paths))
                    })
                    .collect(),
            ),
            Value::Array(items) => Shape::Array(Box::new(
                items
                    .iter()
                    .map(|v| Self::at(v, path, open_paths))
                    .reduce(Shape::merge)
                    .unwrap_or(Shape::Any),
            )),
            _ => Shape::Scalar,
        }
    }

    /// The union of two samples: a name present in either exists. A null in
    /// one sample (an optional field) takes the other sample's shape.
    pub fn merge(self, other: Shape) -> Shape {
        match (self, other) {
            (Shape::Object(mut a), Shape::Object(b)) => {
                for (k, v) in b {
                    let merged = match a.remove(&k) {
                        Some(old) => old.merge(v),
                        None => v,
                    };
                    a.insert(k, merged);
                }
                Shape::Object(a)
            }
            (Shape::Array(a), Shape::Array(b)) => Shape::Array(Box::new(a.merge(*b))),
            (Shape::Any, _) | (_, Shape::Any) => Shape::Any,
            (Shape::Scalar, other) | (other, Shape::Scalar) => other,
            (Shape::Open, _) | (_, Shape::Open) => Shape::Open,
            (Shape::Object(_), Shape::Array(_)) | (Shape::Array(_), Shape::Object(_)) => Shape::Any,
        }
    }

    /// The shape one step below, by name; `Err` when the name does not exist
    /// here, with the names that do.
    pub fn child(&self, name: &str) -> Result<Shape, Vec<String>> {
        match self {
            Shape::Any | Shape::Open => Ok(Shape::Any),
            Shape::Object(m) => m
                .get(name)
                .cloned()
                .ok_or_else(|| m.keys().cloned().collect()),
            Shape::Array(_) if name == "length" => Ok(Shape::Scalar),
            Shape::Array(item) if name.parse::<usize>().is_ok() => Ok((**item).clone()),
            Shape::Array(_) | Shape::Scalar => Err(Vec::new()),
        }
    }

    /// What `{{#each}}` over this shape binds as `this`.
    pub fn element(&self) -> Shape {
        match self {
            Shape::Array(item) => (**item).clone(),
            Shape::Object(m) => m
                .values()
                .cloned()
                .reduce(Shape::merge)
                .unwrap_or(Shape::Any),
            _ => Shape::Any,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_come_from_samples_and_merge() {
        let a = Shape::of(
            &json!({"client": {"email": null, "attrs": {"city": "沪"}}}),
            &["client.attrs"],
        );
        let b = Shape::of(&json!({"client": {"email": "a@b.c", "phone": "1"}}), &[]);
        let s = a.merge(b);
        let client = s.child("client").unwrap();
        assert_eq!(client.child("email"), Ok(Shape::Scalar));
        assert!(client.child("phone").is_ok());
        assert_eq!(
            client.child("attrs").unwrap().child("anything"),
            Ok(Shape::Any)
        );
        let err = client.child("emial").unwrap_err();
        assert!(err.contains(&"email".to_owned()));
    }

    #[test]
    fn array_elements_merge_across_items() {
        let s = Shape::of(&json!([{"a": 1}, {"b": 2}]), &[]);
        let e = s.element();
        assert!(e.child("a").is_ok() && e.child("b").is_ok());
        assert!(e.child("c").is_err());
        assert_eq!(s.child("length"), Ok(Shape::Scalar));
    }
}
