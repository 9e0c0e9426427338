//! Architectures are data plus what is really their own: no two architecture files share a
//! run of six or more lines, identical or of the same shape (every name, number and string
//! replaced by a placeholder; comments, blank lines and `use` imports skipped).

const FILES: [&str; 5] = ["llama", "gemma3", "qwen2", "qwen3", "gpt2"];

/// The file's code lines reduced to their shape.
fn shapes(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("src/model/{name}.rs"))).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with("use "))
        .map(|l| {
            let mut out = String::new();
            let mut chars = l.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '"' {
                    for d in chars.by_ref() {
                        if d == '"' {
                            break;
                        }
                    }
                    out.push('S');
                } else if c.is_alphanumeric() || c == '_' {
                    while chars.peek().is_some_and(|d| d.is_alphanumeric() || *d == '_' || *d == '.') {
                        chars.next();
                    }
                    out.push('x');
                } else if !c.is_whitespace() {
                    out.push(c);
                }
            }
            out
        })
        .collect()
}

#[test]
fn no_two_architecture_files_share_six_lines() {
    const RUN: usize = 6;
    let all: Vec<(&str, Vec<String>)> = FILES.iter().map(|f| (*f, shapes(f))).collect();
    assert!(all.iter().all(|(_, s)| !s.is_empty()));
    for (a, (fa, sa)) in all.iter().enumerate() {
        for (fb, sb) in &all[a + 1..] {
            for wa in sa.windows(RUN) {
                assert!(!sb.windows(RUN).any(|wb| wa == wb), "{fa}.rs and {fb}.rs share {RUN} lines of the same shape: {wa:?}");
            }
        }
    }
}
