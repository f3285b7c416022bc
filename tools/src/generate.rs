//! `daxguard generate man|completions|pkgconfig|cdi|all DIR` (hidden): what a
//! package installs beside the binary, generated from the binary itself, so
//! the pages and completions always match the clap definition they describe
//! (tools/dist/build-deb runs it).
//!
//! daxguard(7), the settings and every message, is made from the tables of
//! docs/guide.md ("Settings", "Every message, and what to do"): one text
//! for both, so neither drifts from the other.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, GenerateArgs, Generated};
use crate::output::{Done, EXIT_OK};
use crate::shim::MULTIARCH;

const GUIDE: &str = include_str!("../../docs/guide.md");
const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn run(a: &GenerateArgs) -> anyhow::Result<Done> {
    let mut written = Vec::new();
    if matches!(a.what, Generated::Man | Generated::All) {
        written.extend(man_pages(&a.dir.join("man"))?);
    }
    if matches!(a.what, Generated::Completions | Generated::All) {
        written.extend(completions(&a.dir.join("completions"))?);
    }
    if matches!(a.what, Generated::Pkgconfig | Generated::All) {
        let dir = a.dir.join("pkgconfig");
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("daxguard.pc");
        fs::write(&path, pkgconfig(&a.prefix)).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    if matches!(a.what, Generated::Cdi | Generated::All) {
        let dir = a.dir.join("cdi");
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("daxguard.json");
        fs::write(&path, crate::cdi::text(&a.prefix)).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    let text: String = written.iter().map(|p| format!("{}\n", p.display())).collect();
    Ok(Done::new(text, EXIT_OK))
}

/// The clap definition as the pages and completions see it (no `help` subcommand).
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// daxguard(1), daxguard-SUB(1) for every visible subcommand, and daxguard(7).
fn man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cmd = command();
    let subs: Vec<String> =
        cmd.get_subcommands().filter(|s| !s.is_hide_set()).map(|s| format!("daxguard-{}", s.get_name())).collect();
    let mut pages: Vec<clap::Command> = vec![cmd.clone()];
    pages.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    let mut written = Vec::new();
    for page in pages {
        let man = clap_mangen::Man::new(page).source(format!("daxguard {VERSION}")).manual("daxguard");
        let mut roff = Vec::new();
        man.render(&mut roff)?;
        let mut see_also: Vec<String> = vec!["daxguard(7)".into()];
        let this = man.get_filename();
        see_also.extend(std::iter::once("daxguard".to_string()).chain(subs.iter().cloned()).map(|s| format!("{s}(1)")));
        see_also.retain(|s| s.replace('(', ".").trim_end_matches(')') != this);
        roff.extend_from_slice(see_also_section(&see_also).as_bytes());
        let path = dir.join(&this);
        fs::write(&path, roff).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    let path = dir.join("daxguard.7");
    fs::write(&path, page7(GUIDE)).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    Ok(written)
}

/// `.SH SEE ALSO` with `name(section)` references, bold names.
fn see_also_section(refs: &[String]) -> String {
    let items: Vec<String> = refs
        .iter()
        .map(|r| {
            let (name, sec) = r.split_once('(').unwrap_or((r, ""));
            format!("\\fB{}\\fR({sec}", name.replace('-', "\\-"))
        })
        .collect();
    format!(".SH \"SEE ALSO\"\n{}\n", items.join(",\n"))
}

/// The command without its hidden subcommands: clap_complete offers every
/// subcommand, hidden or not, and `generate` is for packagers only.
fn visible() -> clap::Command {
    let full = Cli::command();
    let mut cmd = clap::Command::new("daxguard").version(VERSION).propagate_version(true).disable_help_subcommand(true);
    cmd = cmd.args(full.get_arguments().cloned());
    cmd.subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}

fn completions(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut cmd = visible();
    let mut written = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        written.push(clap_complete::generate_to(shell, &mut cmd, "daxguard", dir)?);
    }
    Ok(written)
}

/// daxguard.pc: the header in includedir, the library in its private
/// directory (off the loader's path, hence the rpath).
pub fn pkgconfig(prefix: &Path) -> String {
    format!(
        "prefix={}\nlibdir=${{prefix}}/lib/{MULTIARCH}\nincludedir=${{prefix}}/include\npkglibdir=${{libdir}}/daxguard\n\n\
         Name: daxguard\n\
         Description: Ask whether memory can be registered for RDMA (daxguard_check) before registering it\n\
         Version: {VERSION}\n\
         Libs: -L${{pkglibdir}} -Wl,-rpath,${{pkglibdir}} -ldaxguard\n\
         Cflags: -I${{includedir}}\n",
        prefix.display()
    )
}

/// Markdown inline text as roff: `code` bold, [text](link) as text, and
/// roff's own characters escaped.
fn inline(md: &str) -> String {
    let mut out = String::new();
    let mut code = false;
    let mut chars = md.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                out.push_str(if code { "\\fR" } else { "\\fB" });
                code = !code;
            }
            '\\' if !code && chars.peek() == Some(&'|') => {}
            '\\' => out.push_str("\\e"),
            '-' if code => out.push_str("\\-"),
            '*' if !code && chars.peek() == Some(&'*') => {
                chars.next();
            }
            '[' if !code => {
                let rest: String = chars.clone().collect();
                if let Some((text, tail)) = rest.split_once("](")
                    && let Some(close) = tail.find(')')
                    && !text.contains(']')
                {
                    out.push_str(&inline(text));
                    let skip = text.chars().count() + 2 + tail[..close].chars().count() + 1;
                    for _ in 0..skip {
                        chars.next();
                    }
                } else {
                    out.push('[');
                }
            }
            c => out.push(c),
        }
    }
    if code {
        out.push_str("\\fR");
    }
    out
}

/// One line of roff text: a leading `.` or `'` would be read as a request.
fn text_line(s: &str) -> String {
    if s.starts_with('.') || s.starts_with('\'') { format!("\\&{s}\n") } else { format!("{s}\n") }
}

/// The cells of a table row; `\|` is a pipe inside a cell.
fn cells(row: &str) -> Vec<String> {
    let row = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                out.last_mut().expect("one cell").push('|');
            }
            '|' => out.push(String::new()),
            c => out.last_mut().expect("one cell").push(c),
        }
    }
    out.iter().map(|c| c.trim().to_string()).collect()
}

/// The body of `## heading` in the guide, up to the next `## `.
fn section<'a>(guide: &'a str, heading: &str) -> &'a str {
    let start = guide.find(&format!("\n## {heading}\n")).map(|i| i + heading.len() + 5).unwrap_or(guide.len());
    let end = guide[start..].find("\n## ").map_or(guide.len(), |i| start + i);
    &guide[start..end]
}

/// A guide section as roff: paragraphs as `.PP`, each table row as a `.TP`
/// item whose tag is the first cell and whose body names the other columns.
fn section_roff(body: &str) -> String {
    let mut out = String::new();
    let mut header: Vec<String> = Vec::new();
    let mut para = false;
    for line in body.lines() {
        let t = line.trim();
        if t.is_empty() {
            para = false;
            continue;
        }
        if t.starts_with('|') {
            let c = cells(t);
            if header.is_empty() {
                header = c;
            } else if !c.iter().all(|x| x.chars().all(|ch| ch == '-' || ch == ':')) {
                out.push_str(".TP\n");
                out.push_str(&text_line(&inline(&c[0])));
                for (i, cell) in c.iter().enumerate().skip(1) {
                    let name = header.get(i).map_or("", String::as_str);
                    if i > 1 {
                        out.push_str(".br\n");
                    }
                    let label = if name.is_empty() || i == 1 && header.len() == 2 {
                        String::new()
                    } else {
                        format!("{name}: ")
                    };
                    out.push_str(&text_line(&format!("{label}{}", inline(cell))));
                }
            }
            para = false;
            continue;
        }
        header.clear();
        if !para {
            out.push_str(".PP\n");
            para = true;
        }
        out.push_str(&text_line(&inline(t)));
    }
    out
}

/// daxguard(7): what the library reads and says.
fn page7(guide: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, ".TH DAXGUARD 7 \"\" \"daxguard {VERSION}\" \"daxguard\"");
    s.push_str(".SH NAME\ndaxguard \\- settings and messages of the libdaxguard.so preload library\n");
    s.push_str(&format!(
        ".SH DESCRIPTION\n\
         libdaxguard.so stops a program from taking a long\\-term pin of filesystem\\-DAX memory\n\
         (an RDMA memory registration, a V4L2 USERPTR buffer, an io_uring fixed buffer) before\n\
         the kernel refuses it far from the cause, and says which file and mount are to blame.\n\
         It is loaded with \\fBLD_PRELOAD\\fR, by \\fBdaxguard run\\fR, by a systemd drop\\-in\n\
         (\\fBdaxguard enable \\-\\-unit\\fR) or for every process from \\fI/etc/ld.so.preload\\fR\n\
         (\\fBdaxguard enable \\-\\-host\\fR), and into a Slurm job's tasks by \\fBsrun \\-\\-daxguard\\fR.\n\
         .SH ENVIRONMENT\n{}\
         .SH DIAGNOSTICS\n{}\
         .SH FILES\n\
         .TP\n/etc/daxguard/daxguard.conf\nsettings per program, MPI rank and Slurm job (every line a comment as installed; the environment overrides it); the guide's \"Configuration file\" describes it\n\
         .TP\n/usr/lib/{MULTIARCH}/daxguard/libdaxguard.so\nthe library (a private directory, off the loader's search path)\n\
         .TP\n/usr/lib/{MULTIARCH}/daxguard/daxguard_spank.so\nthe Slurm SPANK plugin: named in \\fIplugstack.conf\\fR, it offers \\fBsrun \\-\\-daxguard=\\fR\\fIMODE\\fR\n\
         .TP\n/usr/lib/{MULTIARCH}/daxguard/daxguard\\-taskprolog\nthe same as a Slurm \\fBTaskProlog\\fR, for jobs with \\fBDAXGUARD_MODE\\fR in their environment\n\
         .TP\n/etc/ld.so.preload\nthe host\\-wide preload list \\fBdaxguard enable \\-\\-host\\fR appends to\n\
         .TP\n/etc/systemd/system/\\fIUNIT\\fR.d/daxguard.conf\nthe drop\\-in \\fBdaxguard enable \\-\\-unit\\fR writes\n\
         .TP\n/var/lib/daxguard/ld.so.preload\nwhat \\fBdaxguard enable \\-\\-host\\fR changed, for \\fBdisable\\fR to undo exactly\n\
         .TP\n/etc/cdi/daxguard.json\nthe CDI spec: \\fB\\-\\-device daxguard.io/preload=enabled\\fR (or =enforce, =warn, =audit, =odp) preloads the library into a container\n\
         .TP\n/usr/include/daxguard.h, daxguard.pc\nthe C API (\\fBdaxguard_check\\fR()), with \\fBpkg\\-config daxguard\\fR\n\
         .SH \"SEE ALSO\"\n\\fBdaxguard\\fR(1), \\fBdaxguard\\-run\\fR(1), \\fBdaxguard\\-enable\\fR(1), \\fBld.so\\fR(8),\n\
         /usr/share/doc/daxguard/guide.md\n",
        section_roff(section(guide, "Settings")),
        section_roff(section(guide, "Every message, and what to do")),
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page7_has_every_setting_the_library_reads() {
        let page = page7(GUIDE);
        let settings = [include_str!("../../shim/src/settings.rs"), include_str!("../../shim/src/config.rs")].concat();
        let mut read: Vec<&str> = settings
            .split('"')
            .filter(|w| w.starts_with("DAXGUARD_") && w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .collect();
        read.sort();
        read.dedup();
        assert!(read.len() >= 6, "{read:?}");
        for var in read.iter().chain(&["DAXGUARD_LIB"]) {
            assert!(page.contains(&format!(".TP\n\\fB{var}\\fR\n")), "{var} is not in daxguard(7)");
        }
    }

    #[test]
    fn page7_has_every_message_of_the_guide() {
        let page = page7(GUIDE);
        let rows = section(GUIDE, "Every message, and what to do").lines().filter(|l| l.starts_with("| `")).count();
        let items = section_roff(section(GUIDE, "Every message, and what to do")).matches(".TP\n").count();
        assert!(rows >= 15 && rows == items, "{rows} rows, {items} items");
        assert!(page.contains("\\fBrefused ENTRY(ADDR, LEN): FILE is on filesystem\\-DAX"), "{page}");
        // Every line that roff reads as a request is one this page means.
        let requests = [".TH ", ".SH ", ".PP", ".TP", ".br"];
        for l in page.lines().filter(|l| l.starts_with('.') || l.starts_with('\'')) {
            assert!(requests.iter().any(|r| l.starts_with(r)), "{l}");
        }
    }

    #[test]
    fn completions_offer_every_visible_subcommand_only() {
        let cmd = visible();
        let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
        assert!(names.contains(&"run") && names.contains(&"enable") && names.contains(&"disable"), "{names:?}");
        assert!(!names.contains(&"generate"), "{names:?}");
        assert_eq!(names.len(), Cli::command().get_subcommands().count() - 1);
    }

    #[test]
    fn markdown_inlines() {
        assert_eq!(inline("`a-b` and [design.md](design.md)"), "\\fBa\\-b\\fR and design.md");
        assert_eq!(inline("**Bold** a\\b"), "Bold a\\eb");
        assert_eq!(cells("| `a\\|b` | c |"), ["`a|b`", "c"]);
        assert_eq!(text_line(".x"), "\\&.x\n");
    }

    #[test]
    fn pkgconfig_names_the_private_directory() {
        let pc = pkgconfig(Path::new("/usr"));
        assert!(pc.contains(&format!("libdir=${{prefix}}/lib/{MULTIARCH}\n")), "{pc}");
        assert!(pc.contains("Libs: -L${pkglibdir} -Wl,-rpath,${pkglibdir} -ldaxguard\n"), "{pc}");
    }
}
