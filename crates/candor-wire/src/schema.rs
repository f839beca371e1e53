//! JSON Schemas for the OpenAPI document: `#/components/schemas/…`
//! references, collected in one generator.

use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, Schema, SchemaGenerator};

/// Makes a schema reference for `T`; used as a function pointer in
/// route tables.
pub type Of = fn(&mut SchemaGenerator) -> Schema;

pub fn of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// A generator for response bodies (what the server serializes).
pub fn responses() -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.contract = Contract::Serialize;
        })
        .into_generator()
}
