//! The `switchyard` binary: parses the command line and runs the chosen command. A failure
//! prints one line and exits non-zero.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::args::{Cli, Command, PluginsCommand};
use cli::{client_commands, plugin_dev, serve};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve(_));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| if serving { "info" } else { "warn" }.into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a log written to a file must grep as text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Command::Plugins(PluginsCommand::Check { files, json }) = &cli.command {
        return serve::check_plugins(files, *json).unwrap_or_else(fail);
    }
    if let Command::Plugin(command) = &cli.command
        && let Some(outcome) = plugin_dev::run_local(command)
    {
        return outcome.unwrap_or_else(fail);
    }
    if let Command::HashPassword = cli.command {
        let mut password = String::new();
        if let Err(error) = std::io::stdin().read_line(&mut password) {
            return fail(error.into());
        }
        println!(
            "{}",
            switchyard::auth::hash_password(password.trim_end_matches(['\r', '\n']))
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(error.into()),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Serve(args) = cli.command {
        return serve::serve(args).await;
    }
    if let Command::Bench(args) = cli.command {
        return cli::bench::run(&cli.client, args).await;
    }
    let connection = client_commands::connect(&cli.client).await?;
    let outcome = match cli.command {
        Command::Exchange(command) => client_commands::exchange(&connection, command).await,
        Command::Queue(command) => client_commands::queue(&connection, command).await,
        Command::Bind(args) => client_commands::bind(&connection, args, true).await,
        Command::Unbind(args) => client_commands::bind(&connection, args, false).await,
        Command::Publish(args) => client_commands::publish(&connection, args).await,
        Command::Consume(args) => client_commands::consume(&connection, args).await,
        Command::Plugins(command) => client_commands::plugins(&connection, command).await,
        Command::Definitions(command) => client_commands::definitions(&connection, command).await,
        Command::Plugin(command) => plugin_dev::run_remote(&connection, command).await,
        Command::Serve(_) | Command::HashPassword | Command::Bench(_) => {
            unreachable!("handled above")
        }
    };
    connection.close().await;
    outcome
}

fn fail(error: anyhow::Error) -> ExitCode {
    eprintln!("switchyard: {error:#}");
    ExitCode::FAILURE
}
