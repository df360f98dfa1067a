import JanssonKit
import PortcullisNet

/// A JSON value and the path it was found at (`inspect.json: $[0].NetworkSettings.Ports`), so
/// that every complaint about a document says where the bad value is.
struct JSONNode {
    let value: JSON
    let location: JSONPath
    var path: String { location.text }

    init(_ value: JSON, path: String) { self.init(value, at: JSONPath(parent: nil, step: .root(path))) }

    init(_ value: JSON, at location: JSONPath) {
        self.value = value
        self.location = location
    }

    /// Parses a whole document; a syntax error names the source, line and column.
    static func parse(_ text: String, source: String) throws(InventoryError) -> JSONNode {
        do {
            return JSONNode(try JSON.parse(text), path: source + ": $")
        } catch {
            throw InventoryError("\(source): not JSON: \(error)")
        }
    }

    func failure(_ message: String) -> InventoryError { InventoryError("\(path): \(message)") }

    /// A member; nil when it is absent or null (the daemon writes both for "none").
    func optional(_ key: String) throws(InventoryError) -> JSONNode? {
        guard case .object = value else { throw failure("expected an object") }
        guard let member = value[key], member != .null else { return nil }
        return JSONNode(member, at: JSONPath(parent: location, step: .member(key)))
    }

    /// `$.a.Key`, or `$.a["80/tcp"]` for a key that is not a plain word.
    func path(of key: String) -> String { JSONPath(parent: location, step: .member(key)).text }

    func required(_ key: String) throws(InventoryError) -> JSONNode {
        guard let member = try optional(key) else { throw failure("missing '\(key)'") }
        return member
    }

    func string() throws(InventoryError) -> String {
        guard case .string(let text) = value else { throw failure("expected a string") }
        return text
    }

    func bool() throws(InventoryError) -> Bool {
        guard case .bool(let flag) = value else { throw failure("expected true or false") }
        return flag
    }

    func integer() throws(InventoryError) -> Int {
        guard case .integer(let number) = value else { throw failure("expected an integer") }
        return number
    }

    func array() throws(InventoryError) -> [JSONNode] {
        guard case .array(let items) = value else { throw failure("expected an array") }
        return items.enumerated().map { JSONNode($1, at: JSONPath(parent: location, step: .index($0))) }
    }

    /// Members in document order.
    func members() throws(InventoryError) -> [(key: String, node: JSONNode)] {
        guard case .object(let pairs) = value else { throw failure("expected an object") }
        return pairs.map { ($0.0, JSONNode($0.1, at: JSONPath(parent: location, step: .member($0.0)))) }
    }

    /// An object of strings (labels, options).
    func stringMap() throws(InventoryError) -> [String: String] {
        var map: [String: String] = [:]
        for (key, node) in try members() { map[key] = try node.string() }
        return map
    }

    func address() throws(InventoryError) -> IPAddress {
        let text = try string()
        guard let address = IPAddress(text) else { throw failure("'\(text)' is not an IP address") }
        return address
    }

    /// `ADDRESS/LENGTH`, or `ADDRESS` with the length given elsewhere.
    func prefix(length: Int? = nil) throws(InventoryError) -> IPPrefix {
        let text = try string()
        let written = length.map { "\(text)/\($0)" } ?? text
        guard case .success(let prefix) = IPPrefix.parse(Substring(written)), written.contains("/") else {
            throw failure("'\(written)' is not an address with a prefix length")
        }
        return prefix
    }

    /// `80/tcp` (the protocol defaults to tcp, as Docker's nat.Port does).
    static func portSpec(_ text: String, at path: String) throws(InventoryError) -> Inventory.PortSpec {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard case .success(let range) = PortRange.parse(parts[0]), range.first == range.last,
            let transport = TransportProtocol(rawValue: parts.count == 2 ? String(parts[1]) : "tcp")
        else { throw InventoryError("\(path): '\(text)' is not a port and protocol such as 80/tcp") }
        return Inventory.PortSpec(port: range.first, transport: transport)
    }
}

/// Where a node was found, written out only when a complaint needs it: a host's documents have
/// thousands of members, and writing every path cost more than reading them.
final class JSONPath: Sendable {
    enum Step {
        /// `inspect.json: $`
        case root(String)
        case member(String)
        case index(Int)
    }

    let parent: JSONPath?
    let step: Step

    init(parent: JSONPath?, step: Step) {
        self.parent = parent
        self.step = step
    }

    var text: String {
        let above = parent?.text ?? ""
        switch step {
        case .root(let text): return above + text
        case .index(let index): return "\(above)[\(index)]"
        case .member(let key):
            return key.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
                ? "\(above).\(key)" : "\(above)[\"\(key)\"]"
        }
    }
}
