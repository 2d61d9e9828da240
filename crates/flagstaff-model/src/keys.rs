use crate::ModelError;

/// LaunchDarkly keys (projects, environments, flags, segments): letters, digits, `.`, `_`
/// and `-`, starting with a letter or digit, at most 256 characters.
pub fn validate_key(what: &str, key: &str) -> Result<(), ModelError> {
    if key.is_empty() {
        return Err(ModelError::invalid(format!("{what} key must not be empty")));
    }
    if key.len() > 256 {
        return Err(ModelError::invalid(format!(
            "{what} key must be at most 256 characters long"
        )));
    }
    let first = key.chars().next().unwrap_or('-');
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !first.is_ascii_alphanumeric() || !key.chars().all(allowed) {
        return Err(ModelError::invalid(format!(
            "{what} key \"{key}\" is invalid: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        )));
    }
    Ok(())
}

/// Names are free text but must not be blank.
pub fn validate_name(what: &str, name: &str) -> Result<(), ModelError> {
    if name.trim().is_empty() {
        return Err(ModelError::invalid(format!(
            "{what} name must not be empty"
        )));
    }
    if name.len() > 256 {
        return Err(ModelError::invalid(format!(
            "{what} name must be at most 256 characters long"
        )));
    }
    Ok(())
}

/// Tags: letters, digits, `.`, `_` and `-`, 1 to 64 characters (LaunchDarkly's rule).
pub fn validate_tags(tags: &[String]) -> Result<(), ModelError> {
    for tag in tags {
        let ok = !tag.is_empty()
            && tag.len() <= 64
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            return Err(ModelError::invalid(format!(
                "tag \"{tag}\" is invalid: tags are 1-64 characters of letters, digits, '.', '_' and '-'"
            )));
        }
    }
    Ok(())
}

/// Sorted, de-duplicated tags: LaunchDarkly returns tags as a set.
pub fn normalize_tags(tags: &mut Vec<String>) {
    tags.sort();
    tags.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(validate_key("flag", "my-flag.v2_x").is_ok());
        assert!(validate_key("flag", "").is_err());
        assert!(validate_key("flag", "-bad").is_err());
        assert!(validate_key("flag", "has space").is_err());
        assert!(validate_key("flag", &"a".repeat(257)).is_err());
    }

    #[test]
    fn tags() {
        assert!(validate_tags(&["beta".into(), "team-x".into()]).is_ok());
        assert!(validate_tags(&["".into()]).is_err());
        assert!(validate_tags(&["white space".into()]).is_err());
        let mut t = vec!["b".to_string(), "a".into(), "b".into()];
        normalize_tags(&mut t);
        assert_eq!(t, vec!["a", "b"]);
    }
}
