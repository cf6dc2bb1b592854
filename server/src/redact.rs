//! Secrets out of URLs before they are printed: every URL that reaches a log line
//! or an error message (store URLs, the OpenAI base URL) goes through [`redact`].

/// `scheme://user:password@host…` with the password replaced by `***` (a userinfo
/// without a colon, which is then the secret, becomes `***`).
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
        None => format!("{scheme}://***@{host}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_leaves_urls_without_password_alone() {
        assert_eq!(redact("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(redact("redis://u:p@h:1/0?x=@"), "redis://u:***@h:1/0?x=@");
        assert_eq!(redact("redis://p@h:1"), "redis://***@h:1");
        assert_eq!(redact("memory"), "memory");
        assert_eq!(
            redact("http://user:pa:ss@llm.internal:8000/v1"),
            "http://user:***@llm.internal:8000/v1"
        );
        assert_eq!(
            redact("https://api.openai.com/v1"),
            "https://api.openai.com/v1"
        );
    }
}
