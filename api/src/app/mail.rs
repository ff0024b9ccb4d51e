//! Mail to customers (the password-reset link), through the configured SMTP server.

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};

/// Why a mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("an address of the mail is not valid: {0}")]
    Address(#[from] lettre::address::AddressError),
    #[error("the mail cannot be built: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("the SMTP server did not take the mail: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: String,
}

/// One mail: to whom, from which tenant's name, about what.
pub struct Mail<'a> {
    pub to: &'a str,
    pub sender_name: &'a str,
    pub subject: String,
    pub body: String,
}

impl Mailer {
    pub fn new(url: &str, from: &str) -> Result<Self, lettre::transport::smtp::Error> {
        namaskah_core::telemetry::install_crypto_provider();
        Ok(Self {
            transport: AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.build(),
            from: from.to_owned(),
        })
    }

    pub async fn send(&self, mail: Mail<'_>) -> Result<(), MailError> {
        let from = Mailbox::new(Some(mail.sender_name.to_owned()), self.from.parse()?);
        let message = Message::builder()
            .from(from)
            .to(Mailbox::new(None, mail.to.parse()?))
            .subject(mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body)?;
        self.transport.send(message).await?;
        Ok(())
    }
}
