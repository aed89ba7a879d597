//! `evolve-standin`: serve the stand-in model from the command line.
//!
//! ```text
//! evolve-standin --port 0 --latency-ms 500 --fault-rate 0.3 --mode openai
//! ```
//! prints `listening on <base URL>` once bound, then serves until killed.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use evolve_standin::{Fault, Standin, StandinConfig};

const USAGE: &str = "usage: evolve-standin [--port N] [--latency-ms N] [--fault-rate F] \
[--faults a,b,...] [--seed N] [--hang-ms N] [--retry-after-ms N] [--api-key KEY] \
[--mode openai|anthropic]";

fn parse_args() -> Result<(u16, StandinConfig, bool), String> {
    let mut config = StandinConfig::default();
    let mut port = 0u16;
    let mut anthropic = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |what: &str| {
            value
                .parse::<f64>()
                .map_err(|_| format!("{what}: not a number: {value:?}"))
        };
        match flag.as_str() {
            "--port" => port = number("--port")? as u16,
            "--latency-ms" => {
                config.latency = Duration::from_millis(number("--latency-ms")? as u64)
            }
            "--fault-rate" => config.fault_rate = number("--fault-rate")?,
            "--seed" => config.seed = number("--seed")? as u64,
            "--hang-ms" => config.hang = Duration::from_millis(number("--hang-ms")? as u64),
            "--retry-after-ms" => config.retry_after_ms = number("--retry-after-ms")? as u64,
            "--api-key" => config.required_key = Some(value),
            "--faults" => {
                config.faults = value
                    .split(',')
                    .map(|name| {
                        Fault::from_name(name.trim()).ok_or_else(|| {
                            let known: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                            format!("unknown fault {name:?}; known: {}", known.join(", "))
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--mode" => match value.as_str() {
                "openai" => anthropic = false,
                "anthropic" => anthropic = true,
                other => return Err(format!("--mode must be openai or anthropic, not {other:?}")),
            },
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    Ok((port, config, anthropic))
}

fn main() -> ExitCode {
    let (port, config, anthropic) = match parse_args() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let standin = match Standin::start(port, config).await {
            Ok(standin) => standin,
            Err(error) => {
                eprintln!("cannot bind 127.0.0.1:{port}: {error}");
                return ExitCode::FAILURE;
            }
        };
        let url = if anthropic {
            standin.anthropic_base_url()
        } else {
            standin.openai_base_url()
        };
        println!("listening on {url}");
        let _ = std::io::stdout().flush();
        std::future::pending::<ExitCode>().await
    })
}
