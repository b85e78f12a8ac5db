use clap::Parser;
use coordinator::config::{Cli, Command, UserCommand};
use coordinator::domain::Role;
use coordinator::store::Store;
use coordinator::{app, telemetry, Application};
use std::io::BufRead;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = cli.settings;
    telemetry::init(settings.log_format, &settings.log_level)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => Application::build(settings).await?.run_until_stopped().await?,
        Command::Migrate => {
            let store = Store::connect(&settings.database_url, 1).await?;
            store.migrate().await?;
            tracing::info!(event = "migrations_applied", backend = store.backend_name());
        }
        Command::User {
            action: UserCommand::Add { name, admin },
        } => {
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            let store = Store::connect(&settings.database_url, 1).await?;
            store.migrate().await?;
            let role = if admin { Role::Admin } else { Role::User };
            app::add_user(&store, &name, password, role).await?;
            tracing::info!(event = "user_created", username = %name, role = role.as_str());
        }
    }
    Ok(())
}
