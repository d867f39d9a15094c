//! Running documented shell commands as a reader would: [`Workdir`] is a
//! scratch directory with `myfile` and `mydir` in it; [`Workdir::parties`]
//! runs commands at the same time (a sender and its receivers, each its
//! own `bash`), [`Workdir::script`] runs lines one after the other in one
//! `bash`. Each command runs in its own process group, which is killed
//! when the test is done with it, so a command that stays (a subscriber,
//! a stream read in the background) outlives nothing.
//!
//! `/usr/bin` comes first on the commands' `PATH`, so `python3` is the
//! Debian one that `.ci/run` installs `python3-websocket` for.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::payload::pattern;
use super::DEADLINE;

/// A scratch directory, removed on drop.
pub struct Workdir {
    pub path: PathBuf,
}

/// What one command printed, and how it ended (`None`: it was stopped).
#[derive(Debug)]
pub struct Ran {
    pub cmd: String,
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

impl Workdir {
    /// A directory holding `myfile` (200 KiB of a seeded pattern) and
    /// `mydir` (three files, one in a subfolder).
    pub fn new(name: &str) -> Workdir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("weir-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("mydir/sub")).unwrap();
        std::fs::write(path.join("myfile"), pattern(200 * 1024, 12)).unwrap();
        std::fs::write(path.join("mydir/a.txt"), b"first file\n").unwrap();
        std::fs::write(path.join("mydir/b.bin"), pattern(70_000, 13)).unwrap();
        std::fs::write(path.join("mydir/sub/c.txt"), b"third\n").unwrap();
        Workdir { path }
    }

    pub fn file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path.join(name)).unwrap_or_default()
    }

    /// Remove what earlier commands made (so a stale copy cannot pass).
    pub fn remove(&self, names: &[&str]) {
        for n in names {
            let p = self.path.join(n);
            let _ = std::fs::remove_dir_all(&p);
            let _ = std::fs::remove_file(&p);
        }
    }

    fn spawn(&self, script: &str, tag: &str) -> Child {
        let path = format!(
            "/usr/bin:/bin:{}",
            std::env::var("PATH").unwrap_or_default()
        );
        let out = std::fs::File::create(self.path.join(format!(".{tag}.out"))).unwrap();
        let err = std::fs::File::create(self.path.join(format!(".{tag}.err"))).unwrap();
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(&self.path)
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("spawn bash")
    }

    fn output(&self, tag: &str) -> (String, String) {
        let read =
            |ext: &str| String::from_utf8_lossy(&self.file(&format!(".{tag}.{ext}"))).into_owned();
        (read("out"), read("err"))
    }

    /// Run `cmds` at the same time, each in its own `bash`. Those that
    /// end are waited for (to the deadline); then `stays` (indexes of
    /// commands that never end by themselves, such as a subscriber) are
    /// given until their output holds `until`, and stopped.
    pub fn parties(&self, cmds: &[String], stays: &[usize], until: &str) -> Vec<Ran> {
        let tags: Vec<String> = (0..cmds.len()).map(|i| format!("party{i}")).collect();
        let mut children: Vec<Child> = cmds
            .iter()
            .zip(&tags)
            .map(|(c, tag)| self.spawn(c, tag))
            .collect();
        let deadline = Instant::now() + DEADLINE;
        let mut codes: Vec<Option<i32>> = vec![None; cmds.len()];
        for (i, child) in children.iter_mut().enumerate() {
            if stays.contains(&i) {
                continue;
            }
            codes[i] = wait(child, deadline);
        }
        for &i in stays {
            while Instant::now() < deadline && !self.output(&tags[i]).0.contains(until) {
                if let Ok(Some(s)) = children[i].try_wait() {
                    codes[i] = s.code();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for child in &mut children {
            stop(child);
        }
        cmds.iter()
            .zip(&tags)
            .zip(codes)
            .map(|((cmd, tag), code)| {
                let (stdout, stderr) = self.output(tag);
                Ran {
                    cmd: cmd.clone(),
                    stdout,
                    stderr,
                    code,
                }
            })
            .collect()
    }

    /// Run `lines` in order in one `bash`; what it started is stopped
    /// once it ends.
    pub fn script(&self, lines: &[String]) -> Ran {
        let script = lines.join("\n");
        let mut child = self.spawn(&script, "script");
        let code = wait(&mut child, Instant::now() + DEADLINE);
        stop(&mut child);
        let (stdout, stderr) = self.output("script");
        Ran {
            cmd: script,
            stdout,
            stderr,
            code,
        }
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Wait for `child` until `deadline`; its exit code (`None` if it did not
/// end, or ended by a signal).
fn wait(child: &mut Child, deadline: Instant) -> Option<i32> {
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return s.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

/// Kill `child`'s process group (it leads its own), then reap it.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg("--")
        .arg(format!("-{}", child.id()))
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
}

/// Whether every program in `programs` is on the commands' `PATH` (and
/// `python3` imports `websocket` when asked for as `python3-websocket`).
/// When one is missing: panics with `require` set to `1` in the
/// environment, else prints a notice and returns false.
pub fn have_programs(test: &str, programs: &[&str], require: &str) -> bool {
    let path = format!(
        "/usr/bin:/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| {
            let check = match *p {
                "python3-websocket" => "python3 -c 'import websocket'".to_string(),
                p => format!("command -v {p}"),
            };
            !Command::new("bash")
                .arg("-c")
                .arg(format!("{check} >/dev/null 2>&1"))
                .env("PATH", &path)
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{test} cannot run: missing {} (Debian packages; .ci/run installs them)",
        missing.join(", ")
    );
    if std::env::var(require).as_deref() == Ok("1") {
        panic!("{msg} ({require}=1 requires it)");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "NOTICE: skipping {msg} (set {require}=1 to make this a failure)"
    );
    false
}

/// Whether two directory trees hold the same files with the same bytes.
pub fn same_tree(a: &Path, b: &Path) -> bool {
    fn files(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                files(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    files(a, a, &mut x);
    files(b, b, &mut y);
    x.sort();
    y.sort();
    !x.is_empty() && x == y
}
