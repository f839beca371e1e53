//! A small element tree over quick-xml, keyed by local names.
//!
//! Cameras disagree about namespace prefixes (`tt:`, `onvif:`, none) and
//! sometimes about the namespaces themselves, so lookups ignore both; what an
//! element means comes from where it sits. Input comes from the network:
//! size, depth and element count are bounded before any of it is trusted.

use quick_xml::events::Event;

pub const MAX_BYTES: usize = 1 << 20;
pub const MAX_DEPTH: usize = 64;
pub const MAX_ELEMENTS: usize = 50_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("XML too large ({0} bytes; at most {MAX_BYTES})")]
    TooLarge(usize),
    #[error("XML nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("XML has more than {MAX_ELEMENTS} elements")]
    TooMany,
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("no root element")]
    Empty,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    /// Local name, prefix dropped.
    pub name: String,
    /// Attributes by local name.
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// Concatenated character data directly inside this element, trimmed.
    pub text: String,
}

fn local(qname: &str) -> String {
    qname.rsplit(':').next().unwrap_or(qname).to_owned()
}

fn malformed(e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed(e.to_string())
}

pub fn parse(xml: &str) -> Result<Element, XmlError> {
    if xml.len() > MAX_BYTES {
        return Err(XmlError::TooLarge(xml.len()));
    }
    let mut r = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    let open =
        |e: &quick_xml::events::BytesStart<'_>, count: &mut usize| -> Result<Element, XmlError> {
            *count += 1;
            if *count > MAX_ELEMENTS {
                return Err(XmlError::TooMany);
            }
            let mut attrs = Vec::new();
            for a in e.attributes() {
                let a = a.map_err(malformed)?;
                let v = a
                    .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .map_err(malformed)?;
                attrs.push((local(a.key.as_ref()), v.into_owned()));
            }
            Ok(Element {
                name: local(e.name().as_ref()),
                attrs,
                ..Default::default()
            })
        };
    loop {
        match r.read_event().map_err(malformed)? {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                stack.push(open(&e, &mut count)?);
            }
            Event::Empty(e) => {
                let el = open(&e, &mut count)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return Err(malformed("more than one root element")),
                }
            }
            Event::End(_) => {
                let mut el = stack.pop().ok_or_else(|| malformed("unbalanced end tag"))?;
                el.text = el.text.trim().to_owned();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return Err(malformed("more than one root element")),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.into_inner());
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c.into_inner());
                }
            }
            Event::GeneralRef(g) => {
                let s = match g.resolve_char_ref().map_err(malformed)? {
                    Some(c) => c.to_string(),
                    None => match g.into_inner().as_ref() {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => return Err(malformed(format!("unknown entity &{other};"))),
                    },
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Event::Eof => break,
            // Declarations, comments, processing instructions, DOCTYPE: ignored
            // (quick-xml never expands external entities).
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(malformed("unclosed element"));
    }
    root.ok_or(XmlError::Empty)
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Follows a `/`-separated path of local names from this element.
    pub fn path(&self, path: &str) -> Option<&Element> {
        path.split('/').try_fold(self, |e, name| e.child(name))
    }

    /// The text at `path`, if present and non-empty.
    pub fn text_at(&self, path: &str) -> Option<&str> {
        self.path(path)
            .map(|e| e.text.as_str())
            .filter(|t| !t.is_empty())
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first descendant (depth first, this element included) named `name`.
    pub fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_dropped_and_entities_resolved() {
        let e = parse(
            r#"<?xml version="1.0"?><s:Envelope xmlns:s="x"><s:Body><a:Thing b:id="7">R&amp;D &#x41;<![CDATA[<raw>]]></a:Thing><Empty/></s:Body></s:Envelope>"#,
        )
        .unwrap();
        let t = e.path("Body/Thing").unwrap();
        assert_eq!(t.text, "R&D A<raw>");
        assert_eq!(t.attr("id"), Some("7"));
        assert!(e.path("Body/Empty").is_some());
        assert_eq!(e.find("Thing").map(|t| t.name.as_str()), Some("Thing"));
    }

    #[test]
    fn hostile_documents_are_refused() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep), Err(XmlError::TooDeep));
        let many = format!("<r>{}</r>", "<a/>".repeat(MAX_ELEMENTS + 1));
        assert_eq!(parse(&many), Err(XmlError::TooMany));
        assert_eq!(
            parse(&" ".repeat(MAX_BYTES + 1)),
            Err(XmlError::TooLarge(MAX_BYTES + 1))
        );
        assert!(matches!(parse("<a><b></a>"), Err(XmlError::Malformed(_))));
        assert!(matches!(parse("<a>&xxe;</a>"), Err(XmlError::Malformed(_))));
        assert!(matches!(parse("<a/><b/>"), Err(XmlError::Malformed(_))));
        assert_eq!(parse(""), Err(XmlError::Empty));
    }
}
