#[derive(clap::Args)] pub struct ChatBenchArgs {} pub async fn chat(_a: ChatBenchArgs) -> anyhow::Result<()> { Ok(()) }
