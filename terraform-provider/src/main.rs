//! `terraform-provider-koru`: started by Terraform or OpenTofu, which it answers over gRPC.

use std::process::ExitCode;

use terraform_provider_koru::{KoruProvider, PROVIDER_NAME};

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::var_os("TF_PLUGIN_MAGIC_COOKIE").is_none() {
        eprintln!(
            "terraform-provider-koru is a plugin: Terraform or OpenTofu start it. See terraform-provider/README.md."
        );
        return ExitCode::FAILURE;
    }
    match tf_provider::serve(PROVIDER_NAME, KoruProvider::new()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("terraform-provider-koru: {e:#}");
            ExitCode::FAILURE
        }
    }
}
