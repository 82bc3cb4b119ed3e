//! `otpgate send` and `otpgate check`: the API of a running otpgate from a terminal, through
//! `otpgate-client` (retries and Idempotency-Key included), for testing a deployment.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use otpgate_client::api::{ChannelName, SendVerificationRequest};
use otpgate_client::{Client, Error};
use serde::Serialize;

const DEFAULT_URL: &str = "http://127.0.0.1:8080";

#[derive(Args)]
pub struct SendArgs {
    /// The phone number, E.164 (`+14155550100`).
    phone: String,
    /// Base URL of the otpgate API.
    #[arg(long, default_value = DEFAULT_URL)]
    url: String,
    #[arg(long, value_enum, default_value_t = Channel::Sms)]
    channel: Channel,
    /// BCP 47 tag for the message template (`en`, `pt-BR`).
    #[arg(long)]
    locale: Option<String>,
    /// Reuse a key to retry an earlier send safely (default: a fresh one).
    #[arg(long)]
    idempotency_key: Option<String>,
    /// The bot-check challenge token (Turnstile, hCaptcha, reCAPTCHA), when the server requires one
    /// (`bot_check` in its configuration).
    #[arg(long, value_name = "TOKEN")]
    bot_token: Option<String>,
}

#[derive(Args)]
pub struct CheckArgs {
    /// The phone number the code was sent to.
    phone: String,
    /// The code from the message.
    code: String,
    /// Base URL of the otpgate API.
    #[arg(long, default_value = DEFAULT_URL)]
    url: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum Channel {
    Sms,
    Whatsapp,
    Call,
}

impl From<Channel> for ChannelName {
    fn from(c: Channel) -> Self {
        match c {
            Channel::Sms => ChannelName::Sms,
            Channel::Whatsapp => ChannelName::Whatsapp,
            Channel::Call => ChannelName::Call,
        }
    }
}

/// Prints the verification as JSON.
pub fn send(args: SendArgs) -> ExitCode {
    let req = SendVerificationRequest {
        phone: args.phone,
        channel: Some(args.channel.into()),
        locale: args.locale,
        bot_token: args.bot_token,
    };
    run(&args.url, |client| async move {
        match &args.idempotency_key {
            Some(key) => client.send_with_key(&req, key).await,
            None => client.send(&req).await,
        }
        .map(|sent| sent.verification)
    })
}

/// Prints the approval (user and session) as JSON.
pub fn check(args: CheckArgs) -> ExitCode {
    run(&args.url, |client| async move { client.check(&args.phone, &args.code).await })
}

fn run<T, F, Fut>(url: &str, call: F) -> ExitCode
where
    T: Serialize,
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let client = match Client::new(url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(call(client)) {
        Ok(value) => match serde_json::to_string_pretty(&value) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot print the answer: {e}");
                ExitCode::FAILURE
            }
        },
        Err(Error::Api(e)) => {
            let mut line = format!("error: {} ({}", e.message, otpgate_client::code_name(e.code));
            if let Some(field) = &e.field {
                line.push_str(&format!(", field {field}"));
            }
            if let Some(left) = e.attempts_left {
                line.push_str(&format!(", {left} attempts left"));
            }
            if let Some(wait) = e.retry_after {
                line.push_str(&format!(", retry after {} s", wait.as_secs()));
            }
            line.push_str(&format!(", request id {})", e.request_id));
            eprintln!("{line}");
            ExitCode::FAILURE
        }
        Err(e @ Error::Transport(_)) => {
            eprintln!("error: {e} (at {url})");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
