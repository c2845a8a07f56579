//! A task's report: `results.md` and `results.json` in its work directory,
//! and its section in a Markdown file (docs/BENCHMARKS.md).

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// Prints `md`, and writes it and `js` to `DIR/results.md` and `DIR/results.json`.
pub fn write_results(dir: &Path, md: &str, js: &Value) -> Result<()> {
    print!("{md}");
    let (md_path, js_path) = (dir.join("results.md"), dir.join("results.json"));
    fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    fs::write(&js_path, serde_json::to_string_pretty(js)? + "\n")
        .with_context(|| format!("writing {}", js_path.display()))?;
    eprintln!("wrote {} and {}", md_path.display(), js_path.display());
    Ok(())
}

/// Puts `section` (which starts with the line `heading`, e.g.
/// `## Over FTP (pure-ftpd on loopback)`) into the file at `path`: in place of
/// an earlier copy of that section (up to the next `## ` heading), or at the
/// end. The rest of the file is kept as is.
pub fn write_section(path: &Path, heading: &str, section: &str) -> Result<()> {
    let old = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    fs::write(path, replace_section(&old, heading, section))
        .with_context(|| format!("writing {}", path.display()))
}

fn replace_section(old: &str, heading: &str, section: &str) -> String {
    let section = format!("{}\n", section.trim_end());
    let head = format!("\n{heading}\n");
    match old.find(&head) {
        Some(start) => {
            let body = start + head.len();
            let end = old[body..]
                .find("\n## ")
                .map_or(old.len(), |i| body + i + 1);
            let mut s = old[..start].trim_end().to_string();
            s.push_str("\n\n");
            s.push_str(&section);
            let rest = &old[end..];
            if !rest.trim().is_empty() {
                s.push('\n');
                s.push_str(rest.trim_end());
                s.push('\n');
            }
            s
        }
        None => format!("{}\n\n{section}", old.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_section_in_place_or_appends_it() {
        let doc = "# Title\n\nintro\n\n## A\n\nold a\n\n## B\n\nb\n";
        assert_eq!(
            replace_section(doc, "## A", "## A\n\nnew a\n"),
            "# Title\n\nintro\n\n## A\n\nnew a\n\n## B\n\nb\n"
        );
        assert_eq!(
            replace_section(doc, "## B", "## B\n\nnew b"),
            "# Title\n\nintro\n\n## A\n\nold a\n\n## B\n\nnew b\n"
        );
        assert_eq!(
            replace_section(doc, "## C", "## C\n\nc\n"),
            "# Title\n\nintro\n\n## A\n\nold a\n\n## B\n\nb\n\n## C\n\nc\n"
        );
    }
}
