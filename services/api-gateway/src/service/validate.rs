//! Collecting validation problems, so that one 400 names all of them.

use std::fmt::Write as _;

/// The problems found in one request, in the order they were found.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    /// Records a problem: a lowercase phrase naming the field, like `email is required`.
    pub fn add(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    /// Records `problem` unless `ok`.
    pub fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.add(problem());
        }
    }

    /// `Ok` when nothing was found, else one INVALID_ARGUMENT error listing every problem.
    pub fn finish(self) -> Result<(), pkg::Error> {
        match self.0.as_slice() {
            [] => Ok(()),
            [one] => Err(pkg::Error::invalid_argument(one.clone())),
            many => {
                let mut message = format!("{} problems: ", many.len());
                for (i, problem) in many.iter().enumerate() {
                    if i > 0 {
                        message.push_str("; ");
                    }
                    let _ = write!(message, "{problem}");
                }
                Err(pkg::Error::invalid_argument(message))
            }
        }
    }
}

/// A UUID in the canonical lowercase form the upstreams use, or a problem naming `field`.
pub fn parse_uuid(raw: &str, field: &str, problems: &mut Problems) -> String {
    // Only the hyphenated form: the braced, URN and simple forms uuid also accepts are not ids
    // any upstream hands out.
    match uuid::Uuid::try_parse(raw) {
        Ok(id) if raw.len() == 36 => id.hyphenated().to_string(),
        _ => {
            problems.add(format!("{field} must be a UUID like 6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01 (got {raw:?})"));
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_canonicalised_to_lowercase() {
        let mut problems = Problems::default();
        let id = parse_uuid("6F1C2B9E-3D4A-4E8B-9F10-2A7C5D6E8B01", "id", &mut problems);
        assert_eq!(id, "6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01");
        assert!(problems.finish().is_ok());
    }

    #[test]
    fn non_uuids_are_problems() {
        for raw in ["", "42", "6f1c2b9e3d4a4e8b9f102a7c5d6e8b01", "{6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01}"] {
            let mut problems = Problems::default();
            parse_uuid(raw, "id", &mut problems);
            assert!(problems.finish().is_err(), "{raw:?}");
        }
    }

    #[test]
    fn several_problems_are_listed_in_one_message() {
        let mut problems = Problems::default();
        problems.add("email is required");
        problems.add("display_name is too long");
        let error = problems.finish().unwrap_err();
        assert_eq!(error.message(), "2 problems: email is required; display_name is too long");
    }
}
