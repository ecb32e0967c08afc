//! The links of a PEP 503 HTML page, read with html5ever's tokenizer.
//!
//! A simple page is a flat list of anchors, so building a DOM would cost memory for
//! nothing; the tokenizer alone decodes character references in attributes and text (pages
//! write `data-requires-python="&gt;=3.8"`) and knows where scripts, styles and comments
//! end, which hand-written pattern matching would get wrong.

use std::cell::RefCell;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use html5ever::TokenizerResult;

/// Longest anchor text kept; a project or file name is far shorter.
const MAX_TEXT: usize = 1024;

/// One `<a>` element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Anchor {
    /// Attributes by lowercase name, values with character references decoded.
    pub(crate) attrs: Vec<(String, String)>,
    /// The text inside, trimmed.
    pub(crate) text: String,
}

impl Anchor {
    /// An attribute's value; the first one when the page repeats it.
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a page links to.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Links {
    /// The first `<base href>`, which relative links resolve against.
    pub(crate) base: Option<String>,
    pub(crate) anchors: Vec<Anchor>,
}

/// Every anchor of a page, in document order.
pub(crate) fn links(html: &str) -> Links {
    let tokenizer = Tokenizer::new(Collector::default(), TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    while let TokenizerResult::Script(()) = tokenizer.feed(&input) {}
    tokenizer.end();
    tokenizer.sink.finish()
}

#[derive(Debug, Default)]
struct Collector {
    state: RefCell<State>,
}

#[derive(Debug, Default)]
struct State {
    links: Links,
    open: Option<Anchor>,
}

impl Collector {
    fn finish(&self) -> Links {
        let mut state = self.state.borrow_mut();
        state.close_anchor();
        std::mem::take(&mut state.links)
    }
}

impl State {
    fn close_anchor(&mut self) {
        if let Some(mut anchor) = self.open.take() {
            anchor.text = anchor.text.trim().to_owned();
            self.links.anchors.push(anchor);
        }
    }

    fn start_tag(&mut self, tag: &Tag) -> TokenSinkResult<()> {
        match &*tag.name {
            "a" => {
                // An `<a>` inside an open one closes it, as browsers do.
                self.close_anchor();
                self.open = Some(Anchor {
                    attrs: attributes(tag),
                    text: String::new(),
                });
            }
            "base" if self.links.base.is_none() => {
                let href = attributes(tag).into_iter().find(|(n, _)| n == "href");
                self.links.base = href.map(|(_, v)| v);
            }
            "script" => return TokenSinkResult::RawData(RawKind::ScriptData),
            "style" | "xmp" | "iframe" | "noembed" | "noframes" => {
                return TokenSinkResult::RawData(RawKind::Rawtext)
            }
            "title" | "textarea" => return TokenSinkResult::RawData(RawKind::Rcdata),
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

impl TokenSink for Collector {
    type Handle = ();

    fn process_token(&self, token: Token, _line_number: u64) -> TokenSinkResult<()> {
        let mut state = self.state.borrow_mut();
        match token {
            Token::TagToken(tag) if tag.kind == TagKind::StartTag => return state.start_tag(&tag),
            Token::TagToken(tag) if &*tag.name == "a" => state.close_anchor(),
            Token::CharacterTokens(text) => {
                if let Some(anchor) = state.open.as_mut() {
                    if anchor.text.len() + text.len() <= MAX_TEXT {
                        anchor.text.push_str(&text);
                    }
                }
            }
            Token::EOFToken => state.close_anchor(),
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

fn attributes(tag: &Tag) -> Vec<(String, String)> {
    tag.attrs
        .iter()
        .map(|a| (a.name.local.to_string(), a.value.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_anchors_with_decoded_attributes() {
        let page = r#"<!DOCTYPE html><html><head><title>Links for x</title>
            <base href="https://up.test/base/"></head><body>
            <h1>Links for x</h1>
            <A HREF="../x-1.0.tar.gz#sha256=ab" data-requires-python="&gt;=3.8&amp;&lt;4">
              x-1.0.tar.gz</A><br/>
            <a href='x-2.0.whl' data-yanked="">x-2.0.whl</a>
            <script>document.write('<a href="evil">evil</a>')</script>
            <!-- <a href="commented">c</a> -->
            <a href="unclosed">unclosed"#;
        let links = links(page);
        assert_eq!(links.base.as_deref(), Some("https://up.test/base/"));
        let hrefs: Vec<_> = links
            .anchors
            .iter()
            .filter_map(|a| a.attr("href"))
            .collect();
        assert_eq!(
            hrefs,
            ["../x-1.0.tar.gz#sha256=ab", "x-2.0.whl", "unclosed"]
        );
        let first = &links.anchors[0];
        assert_eq!(first.text, "x-1.0.tar.gz");
        assert_eq!(first.attr("data-requires-python"), Some(">=3.8&<4"));
        assert_eq!(links.anchors[1].attr("data-yanked"), Some(""));
        assert_eq!(links.anchors[1].attr("data-requires-python"), None);
    }

    #[test]
    fn survives_garbage() {
        for page in [
            "",
            "<",
            "<a",
            "<a href=",
            "\u{feff}<<<>>>",
            "<a><a><a>",
            "</a></a>",
        ] {
            let _ = links(page);
        }
        assert_eq!(links("<a><a href=x>y</a>").anchors.len(), 2);
    }
}
