//! The basic class's 14 content properties and their encoding in a content header: a chain of
//! 16-bit property-flag words, then the present properties in flag order.
//!
//! In each flag word bit 15 is the first property and bit 0 says another flag word follows.
//! The basic class has 14 properties, so one word always suffices when we encode (bits 1 and
//! 0 clear); when we decode we follow the continuation bit as far as the peer chains words,
//! but refuse any flag for a property the class does not define, since its type (and so the
//! layout of everything after it) would be unknown.
//!
//! Short-string properties are `String`, as the broker's message model has them. RabbitMQ
//! carries them as opaque bytes, so a publisher that puts binary in, say, `correlation_id`
//! gets its header refused here (501) where RabbitMQ would pass it on: a known gap, kept
//! because no mainstream client does it.

use bytes::{BufMut, Bytes, BytesMut};
use switchyard_value::Table;

use crate::reader::{Reader, SyntaxError};
use crate::writer::{EncodeError, Writer};

/// AMQP's `basic` class id: the only class with content in 0-9-1.
pub const BASIC_CLASS_ID: u16 = 60;

/// The properties of a message (the basic class's content header), each optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BasicProperties {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub headers: Option<Table>,
    /// 1 transient, 2 persistent.
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    /// Per-message TTL in milliseconds, as decimal text (RabbitMQ's reading of the field).
    pub expiration: Option<String>,
    pub message_id: Option<String>,
    /// Seconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// The property AMQP calls `type`.
    pub message_type: Option<String>,
    pub user_id: Option<String>,
    pub app_id: Option<String>,
    /// Deprecated in 0-9-1; carried so nothing a client sends is lost.
    pub cluster_id: Option<String>,
}

const CONTENT_TYPE: u16 = 1 << 15;
const CONTENT_ENCODING: u16 = 1 << 14;
const HEADERS: u16 = 1 << 13;
const DELIVERY_MODE: u16 = 1 << 12;
const PRIORITY: u16 = 1 << 11;
const CORRELATION_ID: u16 = 1 << 10;
const REPLY_TO: u16 = 1 << 9;
const EXPIRATION: u16 = 1 << 8;
const MESSAGE_ID: u16 = 1 << 7;
const TIMESTAMP: u16 = 1 << 6;
const MESSAGE_TYPE: u16 = 1 << 5;
const USER_ID: u16 = 1 << 4;
const APP_ID: u16 = 1 << 3;
const CLUSTER_ID: u16 = 1 << 2;
const CONTINUATION: u16 = 1;
/// Bits 15..2: the basic class's properties; bit 1 would be a fifteenth.
const PROPERTY_BITS: u16 = !(CONTINUATION | 1 << 1);

impl BasicProperties {
    /// The property flags this set of properties encodes with.
    pub fn flags(&self) -> u16 {
        let present = [
            (self.content_type.is_some(), CONTENT_TYPE),
            (self.content_encoding.is_some(), CONTENT_ENCODING),
            (self.headers.is_some(), HEADERS),
            (self.delivery_mode.is_some(), DELIVERY_MODE),
            (self.priority.is_some(), PRIORITY),
            (self.correlation_id.is_some(), CORRELATION_ID),
            (self.reply_to.is_some(), REPLY_TO),
            (self.expiration.is_some(), EXPIRATION),
            (self.message_id.is_some(), MESSAGE_ID),
            (self.timestamp.is_some(), TIMESTAMP),
            (self.message_type.is_some(), MESSAGE_TYPE),
            (self.user_id.is_some(), USER_ID),
            (self.app_id.is_some(), APP_ID),
            (self.cluster_id.is_some(), CLUSTER_ID),
        ];
        present
            .into_iter()
            .filter(|(set, _)| *set)
            .fold(0, |flags, (_, flag)| flags | flag)
    }

    /// Decodes the flag words and the properties they announce from the front of `input`.
    pub fn decode(input: &mut Bytes) -> Result<BasicProperties, SyntaxError> {
        let mut reader = Reader::new(input.clone());
        let properties = read_properties(&mut reader)?;
        *input = input.split_off(reader.offset());
        Ok(properties)
    }

    /// Appends the flag word and the present properties.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let start = buf.len();
        let result = self.put(buf);
        if result.is_err() {
            buf.truncate(start);
        }
        result
    }

    fn put(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u16(self.flags());
        let mut writer = Writer::new(buf);
        let short = |w: &mut Writer<'_>, value: &Option<String>| match value {
            Some(text) => w.shortstr(text),
            None => Ok(()),
        };
        short(&mut writer, &self.content_type)?;
        short(&mut writer, &self.content_encoding)?;
        if let Some(headers) = &self.headers {
            writer.table(headers)?;
        }
        if let Some(mode) = &self.delivery_mode {
            writer.octet(mode)?;
        }
        if let Some(priority) = &self.priority {
            writer.octet(priority)?;
        }
        short(&mut writer, &self.correlation_id)?;
        short(&mut writer, &self.reply_to)?;
        short(&mut writer, &self.expiration)?;
        short(&mut writer, &self.message_id)?;
        if let Some(timestamp) = &self.timestamp {
            writer.timestamp(timestamp)?;
        }
        short(&mut writer, &self.message_type)?;
        short(&mut writer, &self.user_id)?;
        short(&mut writer, &self.app_id)?;
        short(&mut writer, &self.cluster_id)?;
        Ok(())
    }
}

pub(crate) fn read_properties(reader: &mut Reader) -> Result<BasicProperties, SyntaxError> {
    let flags = reader.short()?;
    if flags & !(PROPERTY_BITS | CONTINUATION) != 0 {
        return Err(SyntaxError::UnknownProperty { flags });
    }
    // Further words can only announce properties the basic class does not have; each is two
    // bytes of the payload, so the loop ends with the input.
    let mut more = flags & CONTINUATION != 0;
    while more {
        let next = reader.short()?;
        if next & !CONTINUATION != 0 {
            return Err(SyntaxError::UnknownProperty { flags: next });
        }
        more = next & CONTINUATION != 0;
    }
    let short = |reader: &mut Reader, flag: u16| -> Result<Option<String>, SyntaxError> {
        (flags & flag != 0).then(|| reader.shortstr()).transpose()
    };
    Ok(BasicProperties {
        content_type: short(reader, CONTENT_TYPE)?,
        content_encoding: short(reader, CONTENT_ENCODING)?,
        headers: (flags & HEADERS != 0).then(|| reader.table()).transpose()?,
        delivery_mode: (flags & DELIVERY_MODE != 0)
            .then(|| reader.octet())
            .transpose()?,
        priority: (flags & PRIORITY != 0)
            .then(|| reader.octet())
            .transpose()?,
        correlation_id: short(reader, CORRELATION_ID)?,
        reply_to: short(reader, REPLY_TO)?,
        expiration: short(reader, EXPIRATION)?,
        message_id: short(reader, MESSAGE_ID)?,
        timestamp: (flags & TIMESTAMP != 0)
            .then(|| reader.timestamp())
            .transpose()?,
        message_type: short(reader, MESSAGE_TYPE)?,
        user_id: short(reader, USER_ID)?,
        app_id: short(reader, APP_ID)?,
        cluster_id: short(reader, CLUSTER_ID)?,
    })
}
