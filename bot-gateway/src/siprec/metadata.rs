//! Recording metadata (RFC 7865, `application/rs-metadata+xml`, and the
//! older draft format deployed SBCs send as `application/rs-metadata`):
//! participants with their `nameID aor` and name, streams with their SDP
//! label, and which participant sends which stream.
//!
//! Both formats are read by one tolerant parser: ids come from
//! `participant_id`/`stream_id`/`session_id` (RFC) or `id` (draft);
//! send/recv associations from `<participantstreamassoc>` (RFC) or from
//! `<send>`/`<recv>` inside `<participant>` (draft); the AoR from
//! `<nameID aor="…">` (RFC) or `<aor>…</aor>` (draft). Extension
//! elements of other namespaces are skipped. Input is bounded (64 KiB,
//! depth 32, 64 participants and streams).

use quick_xml::NsReader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

const MAX_XML: usize = 64 * 1024;
const MAX_DEPTH: usize = 32;
const MAX_ITEMS: usize = 64;
const MAX_TEXT: usize = 1024;
/// Extension data values kept per metadata document.
const MAX_EXTENSIONS: usize = 32;

/// One participant. Holds personal data: no `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Participant {
    pub id: String,
    /// `sip:`, `sips:` or `tel:` URI as sent.
    pub aor: Option<String>,
    pub name: Option<String>,
    /// Stream ids this participant sends.
    pub send: Vec<String>,
    pub recv: Vec<String>,
}

/// One recorded stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stream {
    pub id: String,
    /// The `a=label` of its m-line.
    pub label: Option<String>,
}

/// The parsed metadata. Holds personal data: no `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `complete` or `partial` (RFC 7865 `dataMode`); empty if absent.
    pub data_mode: String,
    pub session_ids: Vec<String>,
    pub participants: Vec<Participant>,
    pub streams: Vec<Stream>,
    /// Extension data (RFC 7865 §6.11): the text of every element in a
    /// namespace other than the recording one (e.g. an SBC's UCID or a
    /// contact-centre id), as (namespace, element name, text); at most 32.
    pub extensions: Vec<(String, String, String)>,
    /// Participants that left: a `<participantsessionassoc>` with a
    /// `<disassociate-time>` (RFC 7865 §6.9), by participant id (which
    /// a partial update need not describe again).
    pub disassociated: Vec<String>,
}

fn attr(e: &BytesStart<'_>, names: &[&str]) -> Result<Option<String>, String> {
    for a in e.attributes() {
        let a = a.map_err(|e| format!("metadata has a malformed attribute: {e}"))?;
        let key = a.key.local_name();
        if names.contains(&key.as_ref()) {
            let v = a
                .normalized_value(quick_xml::XmlVersion::default())
                .map_err(|e| format!("metadata has a malformed attribute value: {e}"))?;
            let v = v.trim();
            if v.len() > MAX_TEXT {
                return Err("metadata attribute too long".into());
            }
            return Ok(Some(v.to_owned()));
        }
    }
    Ok(None)
}

/// What a text node belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sink {
    None,
    Name,
    Aor,
    Label,
    Send,
    Recv,
    DataMode,
}

/// Parses a metadata body.
pub fn parse(body: &[u8]) -> Result<Metadata, String> {
    if body.len() > MAX_XML {
        return Err("metadata larger than 64 KiB".into());
    }
    let text = std::str::from_utf8(body).map_err(|_| "metadata is not UTF-8".to_owned())?;
    let mut reader = NsReader::from_str(text);
    // A foreign-namespace element whose text is extension data.
    let mut ext: Option<(String, String)> = None;
    let mut md = Metadata::default();
    let mut stack: Vec<String> = Vec::new();
    let mut root_seen = false;
    // The element whose children we are in.
    let mut participant: Option<usize> = None;
    let mut stream: Option<usize> = None;
    // A <participantstreamassoc>: the participant it names.
    let mut assoc: Option<String> = None;
    // A <participantsessionassoc>: the participant it names.
    let mut session_assoc: Option<String> = None;
    let mut sink = Sink::None;
    let mut buf = String::new();
    loop {
        let (ns, ev) = reader
            .read_resolved_event()
            .map_err(|e| format!("metadata is not well-formed XML: {e}"))?;
        let ns = match ns {
            ResolveResult::Bound(n) => Some(n.as_ref().to_owned()),
            _ => None,
        };
        let (start, empty) = match &ev {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            _ => (None, false),
        };
        if let Some(e) = start {
            let name = e.local_name().as_ref().to_owned();
            if !root_seen {
                if name != "recording" {
                    return Err("metadata root element is not <recording>".into());
                }
                root_seen = true;
            } else if stack.is_empty() {
                return Err("metadata has more than one root element".into());
            }
            if stack.len() >= MAX_DEPTH {
                return Err("metadata nested too deeply".into());
            }
            let parent = stack.last().map(String::as_str).unwrap_or_default();
            let in_root = stack.len() == 1;
            ext = None;
            if let Some(ns) = ns.filter(|n| !n.starts_with("urn:ietf:params:xml:ns:recording"))
                && !stack.is_empty()
            {
                if ns.len() + name.len() > MAX_TEXT {
                    return Err("metadata extension name too long".into());
                }
                ext = Some((ns, name.clone()));
            }
            match name.as_str() {
                "participant" if in_root => {
                    if md.participants.len() == MAX_ITEMS {
                        return Err("metadata names more than 64 participants".into());
                    }
                    let id = attr(&e, &["participant_id", "id"])?
                        .ok_or("a <participant> without participant_id")?;
                    let i = match md.participants.iter().position(|p| p.id == id) {
                        Some(i) => i,
                        None => {
                            md.participants.push(Participant {
                                id,
                                ..Participant::default()
                            });
                            md.participants.len() - 1
                        }
                    };
                    participant = Some(i);
                }
                "stream" if in_root => {
                    if md.streams.len() == MAX_ITEMS {
                        return Err("metadata names more than 64 streams".into());
                    }
                    let id =
                        attr(&e, &["stream_id", "id"])?.ok_or("a <stream> without stream_id")?;
                    md.streams.push(Stream { id, label: None });
                    stream = Some(md.streams.len() - 1);
                }
                "session" if in_root => {
                    if let Some(id) = attr(&e, &["session_id", "id"])? {
                        md.session_ids.push(id);
                    }
                }
                "participantstreamassoc" if in_root => {
                    let id = attr(&e, &["participant_id", "id"])?
                        .ok_or("a <participantstreamassoc> without participant_id")?;
                    assoc = Some(id);
                }
                "participantsessionassoc" if in_root => {
                    session_assoc = attr(&e, &["participant_id", "id"])?;
                }
                "disassociate-time" if parent == "participantsessionassoc" => {
                    if let Some(id) = session_assoc.clone()
                        && !md.disassociated.contains(&id)
                    {
                        if md.disassociated.len() == MAX_ITEMS {
                            return Err("metadata names more than 64 participants".into());
                        }
                        md.disassociated.push(id);
                    }
                }
                "nameID" | "nameid" if participant.is_some() => {
                    if let (Some(aor), Some(i)) = (attr(&e, &["aor"])?, participant) {
                        md.participants[i].aor = Some(aor);
                    }
                }
                "name" if participant.is_some() && !empty => sink = Sink::Name,
                "aor" if participant.is_some() && parent == "participant" && !empty => {
                    sink = Sink::Aor
                }
                "label" if stream.is_some() && !empty => sink = Sink::Label,
                "send" if (participant.is_some() || assoc.is_some()) && !empty => sink = Sink::Send,
                "recv" if (participant.is_some() || assoc.is_some()) && !empty => sink = Sink::Recv,
                "datamode" | "dataMode" if in_root && !empty => sink = Sink::DataMode,
                _ => {}
            }
            buf.clear();
            if !empty {
                stack.push(name);
            } else {
                ext = None;
                close(&name, &mut participant, &mut stream, &mut assoc, &mut md)?;
            }
            continue;
        }
        match ev {
            Event::Text(t) if sink != Sink::None || ext.is_some() => {
                push_text(&mut buf, &t.xml10_content())?;
            }
            Event::CData(t) if sink != Sink::None || ext.is_some() => {
                push_text(&mut buf, &t.xml10_content())?;
            }
            Event::GeneralRef(r) if sink != Sink::None || ext.is_some() => {
                let c = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .ok()
                        .flatten()
                        .map(String::from)
                        .ok_or("metadata has a bad character reference")?
                } else {
                    resolve_predefined_entity(&r)
                        .map(str::to_owned)
                        .ok_or("metadata uses an undefined entity")?
                };
                push_text(&mut buf, &c)?;
            }
            Event::End(e) => {
                let name = e.local_name().as_ref().to_owned();
                if stack.pop().as_deref() != Some(name.as_str()) {
                    return Err("metadata has mismatched tags".into());
                }
                if let Some((ns, local)) = ext.take()
                    && local == name
                {
                    let v = buf.trim().to_owned();
                    buf.clear();
                    if !v.is_empty() && md.extensions.len() < MAX_EXTENSIONS {
                        md.extensions.push((ns, local, v));
                    }
                }
                if sink != Sink::None {
                    let v = buf.trim().to_owned();
                    buf.clear();
                    let s = std::mem::replace(&mut sink, Sink::None);
                    if !v.is_empty() {
                        apply(s, v, participant, stream, &assoc, &mut md)?;
                    }
                }
                if name == "participantsessionassoc" {
                    session_assoc = None;
                }
                close(&name, &mut participant, &mut stream, &mut assoc, &mut md)?;
            }
            Event::Eof => break,
            Event::DocType(_) => return Err("metadata must not have a DOCTYPE".into()),
            _ => {}
        }
    }
    if !root_seen {
        return Err("metadata has no <recording> element".into());
    }
    if !stack.is_empty() {
        return Err("metadata ends inside an element".into());
    }
    Ok(md)
}

fn push_text(buf: &mut String, s: &str) -> Result<(), String> {
    if buf.len() + s.len() > MAX_TEXT {
        return Err("metadata text too long".into());
    }
    buf.push_str(s);
    Ok(())
}

fn apply(
    sink: Sink,
    v: String,
    participant: Option<usize>,
    stream: Option<usize>,
    assoc: &Option<String>,
    md: &mut Metadata,
) -> Result<(), String> {
    let target = |md: &mut Metadata| -> Result<usize, String> {
        match (participant, assoc) {
            (Some(i), _) => Ok(i),
            (None, Some(id)) => md
                .participants
                .iter()
                .position(|p| &p.id == id)
                .ok_or_else(|| "a <participantstreamassoc> names an unknown participant".into()),
            (None, None) => Err("a <send>/<recv> outside a participant".into()),
        }
    };
    match sink {
        Sink::Name => {
            if let Some(i) = participant {
                md.participants[i].name = Some(v);
            }
        }
        Sink::Aor => {
            if let Some(i) = participant {
                md.participants[i].aor = Some(v);
            }
        }
        Sink::Label => {
            if let Some(i) = stream {
                md.streams[i].label = Some(v);
            }
        }
        Sink::Send | Sink::Recv => {
            let i = target(md)?;
            let list = if sink == Sink::Send {
                &mut md.participants[i].send
            } else {
                &mut md.participants[i].recv
            };
            if list.len() < MAX_ITEMS && !list.contains(&v) {
                list.push(v);
            }
        }
        Sink::DataMode => md.data_mode = v,
        Sink::None => {}
    }
    Ok(())
}

fn close(
    name: &str,
    participant: &mut Option<usize>,
    stream: &mut Option<usize>,
    assoc: &mut Option<String>,
    md: &mut Metadata,
) -> Result<(), String> {
    match name {
        "participant" => *participant = None,
        "stream" => *stream = None,
        "participantstreamassoc" => {
            if let Some(id) = assoc.take()
                && !md.participants.iter().any(|p| p.id == id)
            {
                return Err("a <participantstreamassoc> names an unknown participant".into());
            }
        }
        _ => {}
    }
    Ok(())
}

impl Metadata {
    /// Folds an update (a re-INVITE's or UPDATE's metadata) into the
    /// session's picture: participants and streams matched by id (new
    /// ones appended, known ones refreshed). Returns the indexes of the
    /// participants that joined and of those that left: named in a
    /// `<disassociate-time>`, or, when the update is `complete`, no
    /// longer listed.
    pub fn merge(&mut self, update: Metadata) -> (Vec<usize>, Vec<usize>) {
        let mut joined = Vec::new();
        let listed: Vec<String> = update.participants.iter().map(|p| p.id.clone()).collect();
        for p in update.participants {
            match self.participants.iter().position(|q| q.id == p.id) {
                Some(i) => {
                    let q = &mut self.participants[i];
                    if p.aor.is_some() {
                        q.aor = p.aor;
                    }
                    if p.name.is_some() {
                        q.name = p.name;
                    }
                    for s in p.send {
                        if q.send.len() < MAX_ITEMS && !q.send.contains(&s) {
                            q.send.push(s);
                        }
                    }
                    for s in p.recv {
                        if q.recv.len() < MAX_ITEMS && !q.recv.contains(&s) {
                            q.recv.push(s);
                        }
                    }
                }
                None if self.participants.len() < 4 * MAX_ITEMS => {
                    self.participants.push(p);
                    joined.push(self.participants.len() - 1);
                }
                None => {}
            }
        }
        for s in update.streams {
            match self.streams.iter().position(|t| t.id == s.id) {
                Some(i) if s.label.is_some() => self.streams[i].label = s.label,
                Some(_) => {}
                None if self.streams.len() < 4 * MAX_ITEMS => self.streams.push(s),
                None => {}
            }
        }
        for (ns, local, v) in update.extensions {
            match self
                .extensions
                .iter()
                .position(|(n, l, _)| *n == ns && *l == local)
            {
                Some(i) => self.extensions[i].2 = v,
                None if self.extensions.len() < MAX_EXTENSIONS => {
                    self.extensions.push((ns, local, v))
                }
                None => {}
            }
        }
        let complete = update.data_mode.eq_ignore_ascii_case("complete") && !listed.is_empty();
        let mut left = Vec::new();
        for (i, p) in self.participants.iter().enumerate() {
            let gone =
                update.disassociated.contains(&p.id) || (complete && !listed.contains(&p.id));
            if gone && !self.disassociated.contains(&p.id) {
                left.push(i);
            }
        }
        for &i in &left {
            self.disassociated.push(self.participants[i].id.clone());
        }
        joined.retain(|i| !left.contains(i));
        (joined, left)
    }

    /// The participant who sends the stream labelled `label` in the SDP.
    pub fn sender_of_label(&self, label: &str) -> Option<usize> {
        let stream = self
            .streams
            .iter()
            .find(|s| s.label.as_deref() == Some(label))?;
        self.participants
            .iter()
            .position(|p| p.send.iter().any(|s| s == &stream.id))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// RFC 7865 §8-style metadata of a two-party call.
    pub(crate) const RFC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <group group_id="7+OTCyoxTmqmqyA/1weDAg=="><associate-time>2010-12-16T23:41:07Z</associate-time></group>
  <session session_id="hVpd7YQgRW2nD22h7q60JQ==">
    <sipSessionID>ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2</sipSessionID>
    <group-ref>7+OTCyoxTmqmqyA/1weDAg==</group-ref>
  </session>
  <participant participant_id="srfBElmCRp2QB23b7Mpk0w==">
    <nameID aor="sip:+14255550100@pbx.example.com;user=phone"><name xml:lang="en">Bob &amp; Co</name></nameID>
  </participant>
  <participant participant_id="zSfPoSvdSDCmU3A3TRDxAw==">
    <nameID aor="tel:+44-20-7946-0958"/>
  </participant>
  <stream stream_id="UAAMm5GRQKSCMVvLyl4rFw==" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>1</label></stream>
  <stream stream_id="i1Pz3to5hGk8fuXl+PbwCw==" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>2</label></stream>
  <participantstreamassoc participant_id="srfBElmCRp2QB23b7Mpk0w==">
    <send>UAAMm5GRQKSCMVvLyl4rFw==</send><recv>i1Pz3to5hGk8fuXl+PbwCw==</recv>
  </participantstreamassoc>
  <participantstreamassoc participant_id="zSfPoSvdSDCmU3A3TRDxAw==">
    <send>i1Pz3to5hGk8fuXl+PbwCw==</send><recv>UAAMm5GRQKSCMVvLyl4rFw==</recv>
  </participantstreamassoc>
  <extensiondata xmlns:acme="urn:acme"><acme:ucid>00001234</acme:ucid></extensiondata>
</recording>"#;

    #[test]
    fn rfc_7865_metadata() {
        let md = parse(RFC.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(md.data_mode, "complete");
        assert_eq!(md.session_ids, vec!["hVpd7YQgRW2nD22h7q60JQ==".to_owned()]);
        assert_eq!(md.participants.len(), 2);
        let bob = &md.participants[0];
        assert_eq!(
            bob.aor.as_deref(),
            Some("sip:+14255550100@pbx.example.com;user=phone")
        );
        assert_eq!(bob.name.as_deref(), Some("Bob & Co"));
        assert_eq!(
            md.participants[1].aor.as_deref(),
            Some("tel:+44-20-7946-0958")
        );
        assert_eq!(md.streams.len(), 2);
        assert_eq!(md.sender_of_label("1"), Some(0));
        assert_eq!(md.sender_of_label("2"), Some(1));
        assert_eq!(md.sender_of_label("3"), None);
        assert_eq!(
            md.extensions,
            vec![(
                "urn:acme".to_owned(),
                "ucid".to_owned(),
                "00001234".to_owned()
            )]
        );
    }

    #[test]
    fn updates_name_who_joined_and_who_left() {
        let mut md = parse(RFC.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        // A transfer, as a partial update: the callee leaves, a third
        // party takes over the callee's stream.
        let update = parse(
            br#"<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>partial</datamode>
  <participant participant_id="bmV3"><nameID aor="sip:+4930123456@sbc"><name>Carol</name></nameID></participant>
  <participantsessionassoc participant_id="zSfPoSvdSDCmU3A3TRDxAw==" session_id="hVpd7YQgRW2nD22h7q60JQ==">
    <associate-time>2010-12-16T23:41:07Z</associate-time><disassociate-time>2010-12-16T23:45:00Z</disassociate-time>
  </participantsessionassoc>
  <participantstreamassoc participant_id="bmV3"><send>i1Pz3to5hGk8fuXl+PbwCw==</send></participantstreamassoc>
</recording>"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            update.disassociated,
            vec!["zSfPoSvdSDCmU3A3TRDxAw==".to_owned()]
        );
        let (joined, left) = md.merge(update);
        assert_eq!((joined, left), (vec![2], vec![1]));
        assert_eq!(md.participants[2].name.as_deref(), Some("Carol"));
        assert_eq!(md.sender_of_label("2"), Some(1));
        // A complete snapshot without the caller: the caller left.
        let snapshot = parse(
            br#"<recording><datamode>complete</datamode><participant participant_id="bmV3"/></recording>"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(md.merge(snapshot), (vec![], vec![0]));
    }

    #[test]
    fn legacy_draft_metadata() {
        let xml = r#"<recording xmlns="urn:ietf:params:xml:ns:recording">
  <dataMode>complete</dataMode>
  <session id="s1"><start-time>2014-01-01T00:00:00Z</start-time></session>
  <participant id="p1" session="s1"><aor>sip:alice@example.com</aor><name>Alice</name>
    <send>st1</send><recv>st2</recv></participant>
  <participant id="p2" session="s1"><aor>sip:0049301234567@example.com</aor><send>st2</send></participant>
  <stream id="st1" session="s1"><label>10</label></stream>
  <stream id="st2" session="s1"><label>11</label></stream>
</recording>"#;
        let md = parse(xml.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(md.participants[0].name.as_deref(), Some("Alice"));
        assert_eq!(
            md.participants[1].aor.as_deref(),
            Some("sip:0049301234567@example.com")
        );
        assert_eq!(md.sender_of_label("10"), Some(0));
        assert_eq!(md.sender_of_label("11"), Some(1));
    }

    #[test]
    fn malformed_metadata_is_named() {
        for (xml, want) in [
            ("", "metadata has no <recording> element"),
            ("<x/>", "metadata root element is not <recording>"),
            (
                "<recording><participant id=\"a\"></recording>",
                "metadata is not well-formed XML",
            ),
            (
                "<recording><participant/></recording>",
                "a <participant> without participant_id",
            ),
            (
                "<recording><participantstreamassoc participant_id=\"nobody\"/></recording>",
                "a <participantstreamassoc> names an unknown participant",
            ),
            ("<recording>", "metadata ends inside an element"),
            (
                "<!DOCTYPE x [<!ENTITY a \"b\">]><recording/>",
                "metadata must not have a DOCTYPE",
            ),
        ] {
            let got = parse(xml.as_bytes()).err().unwrap_or_default();
            assert!(got.starts_with(want), "{xml:?}: {got}");
        }
    }
}
