//! A port of npm `object-hash` 3.0.0, restricted to what the reference solution uses:
//! `objectHash(value, { algorithm: 'sha256', encoding: 'hex', unorderedArrays: true })` applied
//! to the output of `JSON.parse`, with every other option at its default (`respectType`,
//! `unorderedObjects`, `respectFunctionNames` and `respectFunctionProperties` all true).
//!
//! Signatures made by the reference signer are over this hash, so the port has to agree with
//! the JavaScript byte for byte, quirks included:
//!
//! * every plain object is written with three pseudo-keys (`prototype`, `__proto__`,
//!   `constructor`) in front of its own keys, which drags `Object.prototype` and the native
//!   `Object` function into the serialisation;
//! * objects, arrays and functions are remembered in a context list, and a repeat is written as
//!   the string `[CIRCULAR:<index>]`. In JSON data the repeats are `Object.prototype`, `Object`
//!   and the value of an own `prototype`, `__proto__` or `constructor` key (visited once as the
//!   pseudo-key, once as the own key), so the indices they got on first sight show up in the
//!   output;
//! * arrays with more than one element are serialised element by element, each with its own
//!   copy of the context; the element strings are sorted and written again as strings. The
//!   context bookkeeping here follows the JavaScript variable rebinding exactly (see
//!   `Hasher::array`), and each element string goes through a Node `PassThrough` stream whose
//!   single `read()` can return less than was written (see `Sink`).
//!
//! Strings are measured and sorted in UTF-16 code units, as JavaScript does, while the bytes fed
//! to the hash are UTF-8.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::rc::Rc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Default `highWaterMark` of a Node byte stream since Node 22.0.0 (it was 16 KiB before). The
/// reference verifier runs in the container on Node 22.18.0, so that is the behaviour matched.
const NODE_STREAM_HIGH_WATER_MARK: usize = 64 * 1024;

/// The exact text object-hash streams into SHA-256 for `value`.
pub fn serialize(value: &Value) -> String {
    let mut hasher = Hasher::new(Sink::hash_input(), Rc::new(RefCell::new(Vec::new())));
    hasher.dispatch(value);
    hasher.sink.into_string()
}

/// Lowercase hex SHA-256 of [`serialize`]: the value `objectHash` returns.
pub fn digest_hex(value: &Value) -> String {
    hex::encode(Sha256::digest(serialize(value).as_bytes()))
}

/// Identity of something object-hash puts in its context list. JSON values are told apart by
/// address: `JSON.parse` never shares an object between two places, and neither does a
/// `serde_json::Value` tree, so address identity is JavaScript object identity here.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Identity {
    ObjectPrototype,
    ObjectFunction,
    Node(*const Value),
}

/// object-hash's `context` array. It is shared (and rebound) the way the JavaScript array is,
/// because which array a hasher holds decides what an enclosing array element gets to see.
type Context = Rc<RefCell<Vec<Identity>>>;

/// Where one hasher writes.
///
/// The top-level hasher writes straight into the hash, so it sees everything. The hasher for an
/// element of an unordered array writes into a `PassThrough` stream that is read once,
/// synchronously: the stream stops accepting data into its readable buffer once that buffer
/// reaches the high-water mark, and the one `read()` lets exactly one more non-empty write
/// through. Everything after that is silently left out of the element's string. Each `write`
/// call is one chunk, so the cut always falls between two writes.
struct Sink {
    buf: String,
    high_water_mark: Option<usize>,
    crossed: bool,
    closed: bool,
}

impl Sink {
    fn hash_input() -> Self {
        Self {
            buf: String::new(),
            high_water_mark: None,
            crossed: false,
            closed: false,
        }
    }

    fn pass_through() -> Self {
        Self {
            high_water_mark: Some(NODE_STREAM_HIGH_WATER_MARK),
            ..Self::hash_input()
        }
    }

    fn write(&mut self, chunk: &str) {
        // Empty chunks never reach a Node readable buffer, so they cannot be "the next chunk".
        if chunk.is_empty() || self.closed {
            return;
        }
        self.buf.push_str(chunk);
        if let Some(high_water_mark) = self.high_water_mark {
            if self.crossed {
                self.closed = true;
            } else if self.buf.len() >= high_water_mark {
                self.crossed = true;
            }
        }
    }

    fn into_string(self) -> String {
        self.buf
    }
}

/// One object-hash `typeHasher`: an output plus the context array it currently holds.
struct Hasher {
    sink: Sink,
    context: Context,
}

impl Hasher {
    fn new(sink: Sink, context: Context) -> Self {
        Self { sink, context }
    }

    fn write(&mut self, chunk: &str) {
        self.sink.write(chunk);
    }

    fn dispatch(&mut self, value: &Value) {
        match value {
            Value::Null => self.write("Null"),
            Value::Bool(true) => self.write("bool:true"),
            Value::Bool(false) => self.write("bool:false"),
            Value::Number(number) => {
                let text = match number.as_f64() {
                    Some(float) => js_number_to_string(float),
                    // Only reachable with serde_json's arbitrary_precision; its own text is the
                    // closest thing to what JavaScript would print.
                    None => number.to_string(),
                };
                self.write(&format!("number:{text}"));
            }
            Value::String(text) => self.string(text),
            Value::Array(items) => self.array(value, items),
            Value::Object(map) => self.object(value, map),
        }
    }

    fn string(&mut self, text: &str) {
        self.write(&format!("string:{}:", utf16_len(text)));
        self.write(text);
    }

    /// The context check at the top of object-hash's `_object`: a repeat is written as a string
    /// and ends the value, anything new is remembered.
    fn seen_before(&mut self, identity: Identity) -> bool {
        let position = self
            .context
            .borrow()
            .iter()
            .position(|known| *known == identity);
        match position {
            Some(index) => {
                self.string(&format!("[CIRCULAR:{index}]"));
                true
            }
            None => {
                self.context.borrow_mut().push(identity);
                false
            }
        }
    }

    fn object(&mut self, value: &Value, map: &Map<String, Value>) {
        if self.seen_before(Identity::Node(value)) {
            return;
        }
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort_by(|a, b| utf16_cmp(a, b));
        self.write(&format!("object:{}:", keys.len() + 3));

        // `object[key]` finds an own property first; JSON.parse makes `__proto__` and
        // `constructor` ordinary own properties, so they shadow the inherited ones.
        self.key("prototype");
        match map.get("prototype") {
            Some(own) => self.dispatch(own),
            None => self.write("Undefined"),
        }
        self.write(",");

        self.key("__proto__");
        match map.get("__proto__") {
            Some(own) => self.dispatch(own),
            None => self.object_prototype(),
        }
        self.write(",");

        self.key("constructor");
        match map.get("constructor") {
            Some(own) => self.dispatch(own),
            None => self.object_function(),
        }
        self.write(",");

        for key in keys {
            self.key(key);
            if let Some(own) = map.get(key.as_str()) {
                self.dispatch(own);
            }
            self.write(",");
        }
    }

    fn key(&mut self, key: &str) {
        self.string(key);
        self.write(":");
    }

    /// `Object.prototype`: no enumerable keys, so only the pseudo-keys, whose values are
    /// `undefined`, `null` (the end of the prototype chain) and `Object`.
    fn object_prototype(&mut self) {
        if self.seen_before(Identity::ObjectPrototype) {
            return;
        }
        self.write("object:3:");
        self.key("prototype");
        self.write("Undefined");
        self.write(",");
        self.key("__proto__");
        self.write("Null");
        self.write(",");
        self.key("constructor");
        self.object_function();
        self.write(",");
    }

    /// The native `Object` function: `_function` writes its (hidden) source and name, then hands
    /// it to `_object`, which skips the pseudo-keys for native functions and finds no own
    /// enumerable keys.
    fn object_function(&mut self) {
        self.write("fn:");
        self.string("[native]");
        self.string("function-name:Object");
        if self.seen_before(Identity::ObjectFunction) {
            return;
        }
        self.write("object:0:");
    }

    /// object-hash's `_array` with `unorderedArrays`.
    ///
    /// For more than one element, JavaScript runs every element through a fresh hasher whose
    /// context is a copy of this hasher's, collects what each copy gained beyond the original
    /// length, and then *rebinds* this hasher's `context` to a new, concatenated array. The
    /// rebinding matters when this hasher is itself an element hasher: its parent keeps looking
    /// at the array it handed in, so anything pushed after the rebinding never reaches the
    /// parent. Sharing the context through `Rc` and swapping it reproduces exactly that.
    fn array(&mut self, value: &Value, items: &[Value]) {
        if self.seen_before(Identity::Node(value)) {
            return;
        }
        self.write(&format!("array:{}:", items.len()));
        if items.len() <= 1 {
            for item in items {
                self.dispatch(item);
            }
            return;
        }

        let base: Vec<Identity> = self.context.borrow().clone();
        let mut additions = Vec::new();
        let mut entries = Vec::with_capacity(items.len());
        for item in items {
            let local: Context = Rc::new(RefCell::new(base.clone()));
            let mut element = Hasher::new(Sink::pass_through(), Rc::clone(&local));
            element.dispatch(item);
            additions.extend_from_slice(local.borrow().get(base.len()..).unwrap_or_default());
            entries.push(element.sink.into_string());
        }
        let mut merged = base;
        merged.extend(additions);
        self.context = Rc::new(RefCell::new(merged));

        entries.sort_by(|a, b| utf16_cmp(a, b));
        self.write(&format!("array:{}:", entries.len()));
        for entry in &entries {
            self.string(entry);
        }
    }
}

/// JavaScript `Number.prototype.toString()` (radix 10).
fn js_number_to_string(value: f64) -> String {
    // ECMAScript prints both zeros as "0"; don't rely on the formatter for the sign of zero.
    if value == 0.0 {
        return "0".to_owned();
    }
    ryu_js::Buffer::new().format(value).to_owned()
}

/// JavaScript `string.length`: UTF-16 code units.
fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// JavaScript's default `Array.prototype.sort` order for strings: UTF-16 code units. This
/// differs from Rust's byte order when a character above U+FFFF meets one in U+E000..=U+FFFF.
fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OBJECT_PROTOTYPE: &str = "object:3:string:9:prototype:Undefined,string:9:__proto__:Null,string:11:constructor:fn:string:8:[native]string:20:function-name:Objectobject:0:,";

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("test JSON parses")
    }

    /// The pseudo-key prefix of a plain object whose context already holds `Object.prototype`
    /// at `proto` and `Object` at `function`.
    fn later_object_prefix(proto: usize, function: usize) -> String {
        let proto_ref = format!("[CIRCULAR:{proto}]");
        let fn_ref = format!("[CIRCULAR:{function}]");
        format!(
            "string:9:prototype:Undefined,string:9:__proto__:string:{}:{proto_ref},string:11:constructor:fn:string:8:[native]string:20:function-name:Objectstring:{}:{fn_ref},",
            proto_ref.len(),
            fn_ref.len()
        )
    }

    /// The pseudo-key prefix of the first object met, which introduces `Object.prototype` and
    /// then `Object`, the latter at index `function`.
    fn first_object_prefix(function: usize) -> String {
        let fn_ref = format!("[CIRCULAR:{function}]");
        format!(
            "string:9:prototype:Undefined,string:9:__proto__:{OBJECT_PROTOTYPE},string:11:constructor:fn:string:8:[native]string:20:function-name:Objectstring:{}:{fn_ref},",
            fn_ref.len()
        )
    }

    fn wrap_string(s: &str) -> String {
        format!("string:{}:{s}", utf16_len(s))
    }

    #[test]
    fn reference_vector_serialization_and_hash() {
        let value = parse(r#"{"b":"x","a":1,"c":[2,1],"d":{"e":true,"f":null}}"#);
        let expected = "object:7:string:9:prototype:Undefined,string:9:__proto__:object:3:string:9:prototype:Undefined,string:9:__proto__:Null,string:11:constructor:fn:string:8:[native]string:20:function-name:Objectobject:0:,,string:11:constructor:fn:string:8:[native]string:20:function-name:Objectstring:12:[CIRCULAR:2],string:1:a:number:1,string:1:b:string:1:x,string:1:c:array:2:array:2:string:8:number:1string:8:number:2,string:1:d:object:5:string:9:prototype:Undefined,string:9:__proto__:string:12:[CIRCULAR:1],string:11:constructor:fn:string:8:[native]string:20:function-name:Objectstring:12:[CIRCULAR:2],string:1:e:bool:true,string:1:f:Null,,";
        assert_eq!(serialize(&value), expected);
        assert_eq!(
            digest_hex(&value),
            "4a077827e332af7005449b6030ad252a899f50d116083770db809d1be74ec6da"
        );
    }

    #[test]
    fn reference_signed_payload_hash() {
        let value = parse(
            r#"{"totalNodes":"5","pgPort":5432,"nodesList":"1 2 3 4 5","priceAggregatorConfig":{"port":3000,"logger":{"level":"info"}}}"#,
        );
        assert_eq!(
            digest_hex(&value),
            "7cf5d910285f4ae9abf32292cc61d39ce723f6e8ac9572c91715a749df602720"
        );
    }

    #[test]
    fn helper_prefixes_match_the_reference_vector() {
        let value = parse(r#"{"d":{}}"#);
        let expected = format!(
            "object:4:{}string:1:d:object:3:{}",
            first_object_prefix(2),
            later_object_prefix(1, 2)
        ) + ",";
        assert_eq!(serialize(&value), expected);
    }

    #[test]
    fn scalars_at_top_level() {
        assert_eq!(serialize(&json!(null)), "Null");
        assert_eq!(serialize(&json!(true)), "bool:true");
        assert_eq!(serialize(&json!(false)), "bool:false");
        assert_eq!(serialize(&json!(1.5)), "number:1.5");
        assert_eq!(serialize(&json!("")), "string:0:");
        assert_eq!(serialize(&json!("héllo")), "string:5:héllo");
    }

    #[test]
    fn numbers_print_like_javascript() {
        assert_eq!(serialize(&parse("-0")), "number:0");
        assert_eq!(serialize(&parse("-0.0")), "number:0");
        assert_eq!(serialize(&parse("1e21")), "number:1e+21");
        assert_eq!(serialize(&parse("1e20")), "number:100000000000000000000");
        assert_eq!(serialize(&parse("1.0")), "number:1");
        assert_eq!(serialize(&parse("0.1")), "number:0.1");
        assert_eq!(serialize(&parse("1e-7")), "number:1e-7");
        assert_eq!(serialize(&parse("0.000001")), "number:0.000001");
        assert_eq!(serialize(&parse("-123.456")), "number:-123.456");
        assert_eq!(serialize(&parse("5e-324")), "number:5e-324");
        // JSON.parse rounds to a double before printing.
        assert_eq!(
            serialize(&parse("9007199254740993")),
            "number:9007199254740992"
        );
        assert_eq!(
            serialize(&parse("18446744073709551615")),
            "number:18446744073709552000"
        );
        assert_eq!(
            serialize(&parse("-9223372036854775808")),
            "number:-9223372036854776000"
        );
    }

    #[test]
    fn astral_strings_count_utf16_units() {
        // U+1F600 is two UTF-16 units and four UTF-8 bytes.
        assert_eq!(serialize(&json!("a\u{1F600}")), "string:3:a\u{1F600}");
        assert_eq!(serialize(&json!("\u{FFFF}")), "string:1:\u{FFFF}");
    }

    #[test]
    fn keys_sort_in_utf16_order() {
        // Byte order would put U+FFFF before U+1F600; UTF-16 puts the surrogate pair (0xD83D)
        // first.
        let value = parse(r#"{"\uffff":1,"😀":2,"a":3,"B":4}"#);
        let text = serialize(&value);
        let b = text.find("string:1:B:").expect("B");
        let a = text.find("string:1:a:").expect("a");
        let astral = text.find("string:2:\u{1F600}:").expect("astral");
        let bmp = text.find("string:1:\u{FFFF}:").expect("bmp");
        assert!(b < a && a < astral && astral < bmp, "{text}");
        assert!(utf16_cmp("\u{1F600}", "\u{FFFF}").is_lt());
        assert!("\u{1F600}".cmp("\u{FFFF}").is_gt());
    }

    #[test]
    fn empty_object_and_array() {
        assert_eq!(
            serialize(&json!({})),
            format!("object:3:{}", first_object_prefix(2))
        );
        assert_eq!(serialize(&json!([])), "array:0:");
        let value = parse(r#"{"a":[],"b":{}}"#);
        let expected = format!(
            "object:5:{}string:1:a:array:0:,string:1:b:object:3:{},",
            first_object_prefix(2),
            later_object_prefix(1, 2)
        );
        assert_eq!(serialize(&value), expected);
    }

    #[test]
    fn single_element_arrays_share_the_context() {
        // Top-level array takes index 0, the object 1, so Object.prototype is 2 and Object 3.
        let value = parse(r#"[{"k":"v"}]"#);
        let expected = format!(
            "array:1:object:4:{}string:1:k:string:1:v,",
            first_object_prefix(3)
        );
        assert_eq!(serialize(&value), expected);

        // A one-element array inside an object is written in place, not as a string.
        let value = parse(r#"{"a":[{}]}"#);
        let expected = format!(
            "object:4:{}string:1:a:array:1:object:3:{},",
            first_object_prefix(2),
            later_object_prefix(1, 2)
        );
        assert_eq!(serialize(&value), expected);
    }

    #[test]
    fn arrays_of_objects_are_order_independent() {
        let one = parse(r#"{"list":[{"id":1,"tags":["x","y"]},{"id":2,"tags":[]}],"z":{}}"#);
        let two = parse(r#"{"z":{},"list":[{"tags":[],"id":2},{"tags":["y","x"],"id":1}]}"#);
        assert_eq!(serialize(&one), serialize(&two));
        assert_ne!(
            digest_hex(&one),
            digest_hex(&parse(
                r#"{"z":{},"list":[{"tags":[],"id":2},{"tags":["y","x"],"id":3}]}"#
            ))
        );
    }

    #[test]
    fn nested_arrays_of_objects() {
        // Context before "l": [top, Object.prototype, Object]; the array takes 3; each element
        // is written with its own copy, so both objects take index 4 and see the prototype at 1.
        let value = parse(r#"{"l":[{"n":2},{"n":1}],"m":{}}"#);
        let element = |n: u32| {
            format!(
                "object:4:{}string:1:n:number:{n},",
                later_object_prefix(1, 2)
            )
        };
        let expected = format!(
            "object:5:{}string:1:l:array:2:array:2:{}{},string:1:m:object:3:{},",
            first_object_prefix(2),
            wrap_string(&element(1)),
            wrap_string(&element(2)),
            later_object_prefix(1, 2)
        );
        assert_eq!(serialize(&value), expected);
    }

    #[test]
    fn top_level_array_elements_each_meet_the_prototype_first() {
        // Every element hasher starts from [array]; each element object takes 1, so
        // Object.prototype is 2 and Object is 3 in each of them.
        let value = parse(r#"[{},[1,2]]"#);
        let object = format!("object:3:{}", first_object_prefix(3));
        let inner = format!(
            "array:2:array:2:{}{}",
            wrap_string("number:1"),
            wrap_string("number:2")
        );
        let mut entries = [object, inner];
        entries.sort_by(|a, b| utf16_cmp(a, b));
        let expected = format!(
            "array:2:array:2:{}{}",
            wrap_string(&entries[0]),
            wrap_string(&entries[1])
        );
        assert_eq!(serialize(&value), expected);
    }

    #[test]
    fn element_context_after_an_inner_unordered_array_stays_local() {
        // "__proto__" and "constructor" are own keys here, so Object.prototype and Object are not
        // met at the top. Inside element A = [[1,2],{"k":1}] of L, the inner unordered array
        // rebinds A's context, so what A registers afterwards never reaches the top-level
        // context: after L the top context is [top, L, A] and "z" sees Object.prototype anew at
        // index 4 ({} itself is 3).
        let value = parse(r#"{"__proto__":[[[1,2],{"k":1}],0],"constructor":1,"z":{}}"#);
        let text = serialize(&value);
        let z = text.find("string:1:z:").expect("z key");
        let tail = &text[z..];
        let expected_tail = format!("string:1:z:object:3:{},", first_object_prefix(5));
        assert_eq!(tail, expected_tail);
        // The repeated own "__proto__" key points back at L (index 1).
        assert!(text.contains("string:9:__proto__:string:12:[CIRCULAR:1],"));
    }

    #[test]
    fn own_proto_and_constructor_keys_replace_the_pseudo_values() {
        let value = parse(r#"{"__proto__":{"x":1},"constructor":"c","prototype":null}"#);
        // Own keys are listed again after the pseudo-keys, so k = 3 + 3.
        let inner = format!("object:4:{}string:1:x:number:1,", first_object_prefix(3));
        let expected = format!(
            "object:6:string:9:prototype:Null,string:9:__proto__:{inner},string:11:constructor:string:1:c,string:9:__proto__:string:12:[CIRCULAR:1],string:11:constructor:string:1:c,string:9:prototype:Null,"
        );
        assert_eq!(serialize(&value), expected);
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_like_json_parse() {
        assert_eq!(
            serialize(&parse(r#"{"a":1,"a":2}"#)),
            serialize(&parse(r#"{"a":2}"#))
        );
    }

    #[test]
    fn element_strings_sort_in_utf16_order() {
        // Same UTF-16 length, so the element strings differ first at U+FFFF versus the leading
        // surrogate of U+1F600, which sorts first in UTF-16 and last in UTF-8.
        let value = parse(r#"["\uffff\uffff","😀"]"#);
        let expected = format!(
            "array:2:array:2:{}{}",
            wrap_string(&wrap_string("\u{1F600}")),
            wrap_string(&wrap_string("\u{FFFF}\u{FFFF}"))
        );
        assert_eq!(serialize(&value), expected);
    }

    #[test]
    fn pass_through_keeps_one_chunk_past_the_high_water_mark() {
        let mut sink = Sink::pass_through();
        let chunk = "x".repeat(1000);
        for _ in 0..100 {
            sink.write(&chunk);
            sink.write("");
        }
        // 66 chunks reach 66,000 >= 65,536; one more gets through the read.
        assert_eq!(sink.into_string().len(), 67_000);

        let mut hash = Sink::hash_input();
        for _ in 0..100 {
            hash.write(&chunk);
        }
        assert_eq!(hash.into_string().len(), 100_000);
    }

    #[test]
    fn oversized_array_elements_are_truncated_like_node() {
        let long = "y".repeat(70_000);
        let value = json!([long, "a"]);
        // The long element's stream gets "string:70000:" and then the 70,000-byte string, which
        // crosses the mark; nothing follows, so it stays whole.
        let text = serialize(&value);
        assert!(text.ends_with(&format!("string:70013:string:70000:{long}")));

        // In an object, the element keeps writing after the long string; only the next chunk
        // (",") survives.
        let value = json!([{"a": long, "b": 1}, 0]);
        let text = serialize(&value);
        assert!(text.starts_with("array:2:array:2:string:8:number:0string:"));
        assert!(text.ends_with(&format!("string:1:a:string:70000:{long},")));
        assert!(!text.contains("string:1:b"));
    }
}
