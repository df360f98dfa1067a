import CJansson

#if canImport(Glibc)
    import Glibc
#endif

/// A JSON value as Swift data. Documents are built here and turned into text, or read from
/// text, by libjansson, which owns the JSON grammar and the escaping of strings.
public indirect enum JSON: Sendable, Hashable {
    /// Keys keep their order, so documents read back in the order they were written.
    case object([(String, JSON)])
    case array([JSON])
    case string(String)
    case integer(Int)
    /// A number written with a fraction or exponent, kept as read: converting it to an integer
    /// could trap (`-1e19`) or lie (`80.5`), so readers that want integers refuse it by path.
    case real(Double)
    case bool(Bool)
    case null

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.object(let x), .object(let y)):
            x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.array(let x), .array(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.integer(let x), .integer(let y)): x == y
        case (.real(let x), .real(let y)): x == y
        case (.bool(let x), .bool(let y)): x == y
        case (.null, .null): true
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .object(let members):
            hasher.combine(0)
            for (key, value) in members {
                hasher.combine(key)
                hasher.combine(value)
            }
        case .array(let items): hasher.combine(items)
        case .string(let s): hasher.combine(s)
        case .integer(let i): hasher.combine(i)
        case .real(let r): hasher.combine(r)
        case .bool(let b): hasher.combine(b)
        case .null: hasher.combine(1)
        }
    }

    public subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var integerValue: Int? {
        if case .integer(let i) = self { return i }
        return nil
    }

    /// The path (`$.a[0].b`) and value of the first real number in document order, if any.
    public var firstReal: (path: String, value: Double)? {
        var pending: [(String, JSON)] = [("$", self)]
        while let (path, value) = pending.popLast() {
            switch value {
            case .real(let number): return (path, number)
            case .object(let members): pending += members.reversed().map { ("\(path).\($0.0)", $0.1) }
            case .array(let items): pending += items.indices.reversed().map { ("\(path)[\($0)]", items[$0]) }
            default: continue
            }
        }
        return nil
    }

    public var arrayValue: [JSON]? {
        if case .array(let items) = self { return items }
        return nil
    }
}

/// Where and why libjansson rejected a document.
public struct JSONParseError: Error, Sendable, CustomStringConvertible {
    public let line: Int
    public let column: Int
    public let message: String

    public var description: String { "\(line):\(column): \(message)" }
}

extension JSON {
    /// Serialises through libjansson: `indent` spaces per level (0 for one line).
    public func rendered(indent: Int = 2) -> String {
        let value = makeJansson()
        defer { json_decref(value) }
        var flags = indent & Int(JSON_MAX_INDENT)
        flags |= Int(JSON_PRESERVE_ORDER) | Int(JSON_ENCODE_ANY)
        guard let text = json_dumps(value, flags) else { return "" }
        defer { free(text) }
        return String(cString: text)
    }

    /// Parses text with libjansson (duplicate keys and trailing garbage are errors).
    public static func parse(_ text: String) throws(JSONParseError) -> JSON {
        var error = json_error_t()
        let flags = Int(JSON_REJECT_DUPLICATES)
        guard let root = json_loadb(text, text.utf8.count, flags, &error) else {
            let message = withUnsafeBytes(of: &error.text) {
                String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
            }
            throw JSONParseError(line: Int(error.line), column: Int(error.column), message: message)
        }
        defer { json_decref(root) }
        return JSON(jansson: root)
    }

    /// A new reference the caller owns.
    func makeJansson() -> UnsafeMutablePointer<json_t> {
        switch self {
        case .object(let members):
            let object = json_object()!
            for (key, value) in members { json_object_set_new(object, key, value.makeJansson()) }
            return object
        case .array(let items):
            let array = json_array()!
            for item in items { json_array_append_new(array, item.makeJansson()) }
            return array
        case .string(let s):
            return json_stringn(s, s.utf8.count)
        case .integer(let i):
            return json_integer(json_int_t(i))
        case .real(let r):
            // libjansson has no infinities or NaN (no parsed document holds them either).
            return r.isFinite ? json_real(r) : json_null()
        case .bool(let b):
            return b ? json_true() : json_false()
        case .null:
            return json_null()
        }
    }

    init(jansson value: UnsafeMutablePointer<json_t>) {
        switch value.pointee.type {
        case JSON_OBJECT:
            var members: [(String, JSON)] = []
            var iterator = json_object_iter(value)
            while let current = iterator {
                let key = String(cString: json_object_iter_key(current))
                members.append((key, JSON(jansson: json_object_iter_value(current))))
                iterator = json_object_iter_next(value, current)
            }
            self = .object(members)
        case JSON_ARRAY:
            self = .array((0..<json_array_size(value)).map { JSON(jansson: json_array_get(value, $0)) })
        case JSON_STRING:
            self = .string(String(cString: json_string_value(value)))
        case JSON_INTEGER:
            // json_int_t is 64 bits wide, as Int is on the platforms Portcullis runs on.
            self = .integer(Int(json_integer_value(value)))
        case JSON_REAL:
            self = .real(json_real_value(value))
        case JSON_TRUE:
            self = .bool(true)
        case JSON_FALSE:
            self = .bool(false)
        default:
            self = .null
        }
    }
}
