//! # danaus-client
//!
//! A thin Rust client for the Danaus gRPC API: one [`Client`] holding a
//! channel and the tenant, handing out the generated service clients with
//! the tenant attached to every call. [`time`] parses and prints the
//! times users type (`now-1h`, RFC 3339, raw nanoseconds). The
//! `danausctl` binary is built on it.

pub mod query;
pub mod time;
pub mod zone;

use danaus_proto::v1 as pb;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// Metadata key naming the tenant (see the server's `tenant` module).
pub const TENANT_HEADER: &str = "x-danaus-tenant";

/// Attaches the tenant to every request.
#[derive(Clone, Debug)]
pub struct TenantInterceptor {
    tenant: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl tonic::service::Interceptor for TenantInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(t) = &self.tenant {
            req.metadata_mut().insert(TENANT_HEADER, t.clone());
        }
        Ok(req)
    }
}

/// The generated clients with the tenant interceptor. (madsim-tonic's
/// generated clients take the interceptor as a type parameter instead of
/// wrapping the channel.)
#[cfg(not(madsim))]
mod svc {
    use super::*;
    use tonic::service::interceptor::InterceptedService;
    type S = InterceptedService<Channel, TenantInterceptor>;
    pub type Schema = pb::schema_service_client::SchemaServiceClient<S>;
    pub type Ingest = pb::ingest_service_client::IngestServiceClient<S>;
    pub type Query = pb::query_service_client::QueryServiceClient<S>;
    pub type Read = pb::read_service_client::ReadServiceClient<S>;
    pub type Config = pb::config_service_client::ConfigServiceClient<S>;
    pub type Rules = pb::rule_service_client::RuleServiceClient<S>;
}
#[cfg(madsim)]
mod svc {
    use super::*;
    pub type Schema = pb::schema_service_client::SchemaServiceClient<Channel, TenantInterceptor>;
    pub type Ingest = pb::ingest_service_client::IngestServiceClient<Channel, TenantInterceptor>;
    pub type Query = pb::query_service_client::QueryServiceClient<Channel, TenantInterceptor>;
    pub type Read = pb::read_service_client::ReadServiceClient<Channel, TenantInterceptor>;
    pub type Config = pb::config_service_client::ConfigServiceClient<Channel, TenantInterceptor>;
    pub type Rules = pb::rule_service_client::RuleServiceClient<Channel, TenantInterceptor>;
}

/// A connection to a Danaus server.
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    interceptor: TenantInterceptor,
}

/// Largest message the client sends or accepts.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

impl Client {
    /// Connects to `addr` (`http://host:port`).
    pub async fn connect(addr: &str, tenant: Option<&str>) -> anyhow::Result<Client> {
        let addr = if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") };
        let channel = Endpoint::from_shared(addr.clone())?
            .connect()
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to {addr}: {e} (is `danaus standalone` running?)"))?;
        let tenant = tenant
            .map(|t| t.parse().map_err(|_| anyhow::anyhow!("tenant {t:?} is not valid ASCII metadata")))
            .transpose()?;
        Ok(Client { channel, interceptor: TenantInterceptor { tenant } })
    }

    /// SchemaService.
    pub fn schema(&self) -> svc::Schema {
        pb::schema_service_client::SchemaServiceClient::with_interceptor(self.channel.clone(), self.interceptor.clone())
    }

    /// IngestService.
    pub fn ingest(&self) -> svc::Ingest {
        pb::ingest_service_client::IngestServiceClient::with_interceptor(self.channel.clone(), self.interceptor.clone())
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// QueryService.
    pub fn query(&self) -> svc::Query {
        pb::query_service_client::QueryServiceClient::with_interceptor(self.channel.clone(), self.interceptor.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// The range assigner (when connected to one of its members).
    pub fn assigner(&self) -> pb::assigner_service_client::AssignerServiceClient<Channel> {
        pb::assigner_service_client::AssignerServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// ConfigService (a config service member, a zone's mirror, or
    /// standalone's front door).
    pub fn config(&self) -> svc::Config {
        pb::config_service_client::ConfigServiceClient::with_interceptor(self.channel.clone(), self.interceptor.clone())
            .max_decoding_message_size(danaus_proto::MAX_CONFIG_BYTES)
            .max_encoding_message_size(danaus_proto::MAX_CONFIG_BYTES)
    }

    /// RuleService (an evaluator member, or standalone's front door).
    pub fn rules(&self) -> svc::Rules {
        pb::rule_service_client::RuleServiceClient::with_interceptor(self.channel.clone(), self.interceptor.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// ReadService.
    pub fn read(&self) -> svc::Read {
        pb::read_service_client::ReadServiceClient::with_interceptor(self.channel.clone(), self.interceptor.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }
}
