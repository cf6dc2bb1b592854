//! The processes of a run: where the binaries are, the `colloquy` command line, the
//! context every step shares, and measuring a load with the server's CPU time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use colloquy_bench::load::{self, LoadResult, Stop};
use colloquy_bench::process::{temp_dir, Probe, ServerCommand, ServerProcess, TempDir};
use colloquy_bench::report::ms;
use colloquy_bench::scenarios::{LoadShape, Scenario};
use colloquy_bench::BenchError;

use crate::settings::{Args, Settings};

/// What every step of a run needs: the settings, the binaries, where logs go, and the
/// tag that keeps this run's names apart from any other's.
pub(crate) struct RunContext<'a> {
    pub(crate) args: &'a Args,
    pub(crate) settings: Settings,
    pub(crate) shape: LoadShape,
    pub(crate) tag: String,
    pub(crate) logs: TempDir,
    colloquy: PathBuf,
    ceiling: PathBuf,
    /// `--redis-prefix <this run's prefix>` when the Redis is shared (`--redis-url`).
    redis_args: Vec<String>,
}

impl<'a> RunContext<'a> {
    /// Finds the binaries and makes the log directory.
    pub(crate) fn new(args: &'a Args) -> Result<Self, BenchError> {
        let settings = Settings::from_args(args);
        let tag = run_tag();
        let redis_args = if args.redis_url.is_some() {
            vec!["--redis-prefix".to_owned(), format!("{tag}:")]
        } else {
            Vec::new()
        };
        let shape = LoadShape {
            connections: settings.connections,
            stop: Stop::Duration {
                warmup: settings.warmup,
                measure: settings.measure,
            },
            sources: Vec::new(),
            one_client_requests: settings.one_client_requests,
        };
        Ok(Self {
            args,
            colloquy: find_binary("colloquy", args.colloquy.as_deref())?,
            ceiling: find_binary("colloquy-ceiling", args.ceiling.as_deref())?,
            logs: temp_dir()?,
            settings,
            shape,
            tag,
            redis_args,
        })
    }

    /// The run's log directory.
    pub(crate) fn logs(&self) -> &Path {
        self.logs.path()
    }

    /// The key prefix of this run on a shared Redis, if any.
    pub(crate) fn shared_redis_prefix(&self) -> Option<&str> {
        self.redis_args.get(1).map(String::as_str)
    }

    /// Starts the ceiling server.
    pub(crate) async fn start_ceiling(&self) -> Result<ServerProcess, BenchError> {
        let command = ServerCommand {
            name: "ceiling".to_owned(),
            program: self.ceiling.clone(),
            args: vec!["--bind".to_owned(), "127.0.0.1:{port}".to_owned()],
            env: Vec::new(),
            probe: Probe::Healthz,
        };
        ServerProcess::start(&command, self.logs()).await
    }

    /// The `colloquy` command line for `store_arg` (echo model), with `extra` flags.
    pub(crate) fn colloquy_command(
        &self,
        name: &str,
        store_arg: &str,
        extra: &[String],
    ) -> ServerCommand {
        self.command_of(&self.colloquy, name, store_arg, extra)
    }

    /// [`RunContext::colloquy_command`] for another `colloquy` binary, `program`.
    fn command_of(
        &self,
        program: &Path,
        name: &str,
        store_arg: &str,
        extra: &[String],
    ) -> ServerCommand {
        let mut args: Vec<String> = [
            "--bind",
            "127.0.0.1:{port}",
            "--store",
            store_arg,
            "--model",
            "echo",
            "--log-level",
            "warn",
        ]
        .map(str::to_owned)
        .to_vec();
        if store_arg.starts_with("redis") {
            args.extend(self.redis_args.iter().cloned());
        }
        args.extend(extra.iter().cloned());
        ServerCommand {
            name: name.to_owned(),
            program: program.to_owned(),
            args,
            env: Vec::new(),
            probe: Probe::Healthz,
        }
    }

    /// Starts `colloquy` on `store_arg` with `extra` flags.
    pub(crate) async fn start_colloquy(
        &self,
        name: &str,
        store_arg: &str,
        extra: &[String],
    ) -> Result<ServerProcess, BenchError> {
        ServerProcess::start(&self.colloquy_command(name, store_arg, extra), self.logs()).await
    }

    /// Starts another `colloquy` binary, `program`, as [`RunContext::start_colloquy`]
    /// starts this one.
    pub(crate) async fn start_colloquy_binary(
        &self,
        program: &Path,
        name: &str,
        store_arg: &str,
        extra: &[String],
    ) -> Result<ServerProcess, BenchError> {
        let command = self.command_of(program, name, store_arg, extra);
        ServerProcess::start(&command, self.logs()).await
    }

    /// Whether `colloquy --help` lists `flag`.
    pub(crate) fn colloquy_has_flag(&self, flag: &str) -> bool {
        std::process::Command::new(&self.colloquy)
            .arg("--help")
            .output()
            .is_ok_and(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .split(|c: char| c.is_whitespace() || c == ',' || c == '=')
                    .any(|word| word == flag)
            })
    }

    /// One progress line on stderr.
    pub(crate) fn progress(&self, server: &str, scenario: Scenario, r: &LoadResult) {
        eprintln!(
            "  {server:>8} {:<26} {:>9.0} req/s  p50 {:>7} ms  p99 {:>7} ms  errors {}",
            scenario.label(self.settings.big_session),
            r.rps(),
            ms(r.latency.p50()),
            ms(r.latency.p99()),
            r.errors
        );
    }
}

/// `explicit`, or `name` beside this executable, in `$CARGO_TARGET_DIR/release`, or
/// in `target/release`.
pub(crate) fn find_binary(name: &str, explicit: Option<&Path>) -> Result<PathBuf, BenchError> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_owned())
        } else {
            Err(BenchError::BinaryNotFound(path.to_owned()))
        };
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned))
    {
        candidates.push(dir.join(name));
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("release").join(name));
    }
    candidates.push(PathBuf::from("target/release").join(name));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| BenchError::BinaryNotFound(candidates[candidates.len() - 1].clone()))
}

/// A short unique tag for the names this run creates (letters, digits).
fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("bench{}", nanos % 1_000_000_000)
}

/// Runs `load` against `server` and returns the result with the server's CPU time
/// per successful request.
pub(crate) async fn measured(
    server: &ServerProcess,
    load: &load::Load,
) -> Result<(LoadResult, Option<Duration>), BenchError> {
    let before = server.cpu_time();
    let result = load::run(load).await?;
    let after = server.cpu_time();
    let per_request = match (before, after) {
        (Some(b), Some(a)) if result.completed > 0 => {
            let n = u32::try_from(result.completed).unwrap_or(u32::MAX);
            Some(a.saturating_sub(b) / n)
        }
        _ => None,
    };
    Ok((result, per_request))
}

/// The line of a failed start-up's log that says why (its first error line).
pub(crate) fn start_failure(log_tail: &str) -> String {
    log_tail
        .lines()
        .find(|l| l.to_ascii_lowercase().contains("error"))
        .or_else(|| log_tail.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_binary_must_exist() {
        let missing = Path::new("/nonexistent/colloquy");
        assert!(matches!(
            find_binary("colloquy", Some(missing)),
            Err(BenchError::BinaryNotFound(p)) if p == missing
        ));
    }

    #[test]
    fn start_failure_prefers_the_error_line() {
        assert_eq!(
            start_failure("starting\nERROR connecting to PostgreSQL failed\nbye"),
            "ERROR connecting to PostgreSQL failed"
        );
        assert_eq!(start_failure("\nonly this\n"), "only this");
    }
}
