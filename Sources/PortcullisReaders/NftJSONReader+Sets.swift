import JanssonKit
import PortcullisIR
import PortcullisNet

/// Named sets and maps: their types and elements as IR values.
extension NftJSONReader {
    func types(_ value: JSON?, _ path: String) throws(ReadError) -> [NamedSet.KeyType] {
        let names: [String]
        if let text = value?.stringValue {
            names = text.split(separator: " . ").map(String.init)
        } else if let items = value?.arrayValue {
            names = items.compactMap(\.stringValue)
            guard names.count == items.count else { throw ReadError(line: 0, message: "\(path): malformed type") }
        } else {
            throw ReadError(line: 0, message: "\(path): missing type")
        }
        var result: [NamedSet.KeyType] = []
        for name in names {
            guard let type = NamedSet.KeyType(rawValue: name) else {
                throw ReadError(line: 0, message: "type \(name) is not modelled", unsupported: true)
            }
            result.append(type)
        }
        guard !result.isEmpty else { throw ReadError(line: 0, message: "\(path): empty type") }
        return result
    }

    /// A range of a concatenated key reads as the product of its parts' prefixes (up to 254²
    /// per element for two IPv6 ranges), so a small document could ask for gigabytes: beyond
    /// this many elements a set is an error rather than an out-of-memory kill.
    static let maximumElements = 1 << 20

    func set(_ body: JSON, path: String) throws(ReadError) -> (NamedSet, [ReadWarning]) {
        let name = try string(body, "name", path)
        let keyTypes = try types(body["type"], path + ".type")
        var mapValue: NamedSet.MapValue?
        if let map = body["map"] {
            mapValue = map.stringValue == "verdict" ? .verdict : .data(try types(map, path + ".map"))
        }
        var warnings: [ReadWarning] = []
        let flags =
            body["flags"]?.arrayValue?.compactMap(\.stringValue) ?? body["flags"]?.stringValue.map { [$0] } ?? []
        for flag in flags where !["interval", "constant"].contains(flag) {
            warnings.append(
                ReadWarning(path: path, message: "set flag '\(flag)' not modelled (elements are read as listed)"))
        }
        var elements: [SetElement] = []
        for (index, item) in (body["elem"]?.arrayValue ?? []).enumerated() {
            let at = "\(path).elem[\(index)]"
            var keyJSON = item
            var valueJSON: JSON?
            if mapValue != nil {
                guard let pair = item.arrayValue, pair.count == 2 else {
                    throw ReadError(line: 0, message: "\(at): a map element is a [key, value] pair")
                }
                keyJSON = pair[0]
                valueJSON = pair[1]
            }
            // Elements with a timeout, comment or counter come wrapped: {"elem": {"val": ...}}.
            if let wrapped = keyJSON["elem"]?["val"] { keyJSON = wrapped }
            let keys = try key(keyJSON, types: keyTypes, at, warnings: &warnings)
            var value: MapResult?
            switch (mapValue, valueJSON) {
            case (.verdict?, let json?):
                guard let action = RuleReader.verdict(json) else {
                    throw ReadError(line: 0, message: "\(at): not a verdict")
                }
                value = .verdict(action)
            case (.data(let types)?, let json?):
                let values = try key(json, types: types, at, warnings: &warnings)
                guard values.count == 1 else {
                    throw ReadError(line: 0, message: "\(at): a map value must be one value, not a range")
                }
                value = .data(values[0])
            default: break
            }
            guard elements.count + keys.count <= Self.maximumElements else {
                throw ReadError(
                    line: 0,
                    message:
                        "\(at): \(name) holds more than \(Self.maximumElements) elements once address ranges are read as prefixes"
                )
            }
            elements += keys.map { SetElement(key: $0, value: value) }
        }
        let set = NamedSet(
            name: name, keyTypes: keyTypes, mapValue: mapValue, interval: flags.contains("interval"),
            elements: elements)
        return (set, warnings)
    }

    /// One key (or map value) as IR values. Usually one; an address range that is not one prefix
    /// becomes the prefixes that cover it exactly (the IR has no address ranges), with a warning.
    func key(_ json: JSON, types: [NamedSet.KeyType], _ path: String, warnings: inout [ReadWarning]) throws(ReadError)
        -> [[SetValue]]
    {
        let parts = types.count == 1 ? [json] : (json["concat"]?.arrayValue ?? [])
        guard parts.count == types.count else {
            throw ReadError(line: 0, message: "\(path): expected a key of \(types.count) parts")
        }
        var keys: [[SetValue]] = [[]]
        for (part, type) in zip(parts, types) {
            let values = try value(part, type: type, path, warnings: &warnings)
            guard keys.count * values.count <= Self.maximumElements else {
                throw ReadError(line: 0, message: "\(path): the key's address ranges read as too many prefixes")
            }
            keys = keys.flatMap { key in values.map { key + [$0] } }
        }
        return keys
    }

    func value(_ json: JSON, type: NamedSet.KeyType, _ path: String, warnings: inout [ReadWarning]) throws(ReadError)
        -> [SetValue]
    {
        func bad() -> ReadError { ReadError(line: 0, message: "\(path): not a valid \(type.rawValue) value") }
        switch type {
        case .ipv4Address, .ipv6Address:
            let family: IPFamily = type == .ipv4Address ? .ipv4 : .ipv6
            if let prefix = RuleReader.prefix(json), prefix.family == family { return [.address(prefix)] }
            guard let range = json["range"]?.arrayValue, range.count == 2,
                let first = range[0].stringValue.flatMap(IPAddress.init),
                let last = range[1].stringValue.flatMap(IPAddress.init), first.family == family,
                last.family == family, first <= last
            else { throw bad() }
            let prefixes = Self.prefixes(from: first, to: last)
            if prefixes.count > 1 {
                warnings.append(
                    ReadWarning(
                        path: path, message: "address range \(first)-\(last) read as \(prefixes.count) prefixes"))
            }
            return prefixes.map { .address($0) }
        case .service:
            guard let ports = RuleReader.ports(json) else { throw bad() }
            return [.ports(ports)]
        case .transport:
            let numbers: [Int: TransportProtocol] = [6: .tcp, 17: .udp, 132: .sctp]
            guard
                let transport = json.stringValue.flatMap(TransportProtocol.init(rawValue:))
                    ?? json.integerValue.flatMap({ numbers[$0] })
            else { throw bad() }
            return [.transport(transport)]
        case .interfaceName:
            guard let name = json.stringValue else { throw bad() }
            return [.interface(name)]
        }
    }

    /// The fewest prefixes that cover `first...last` exactly.
    static func prefixes(from first: IPAddress, to last: IPAddress) -> [IPPrefix] {
        var result: [IPPrefix] = []
        var start = first
        let width = first.family.bitWidth
        while true {
            var length = width
            while length > 0, start.masked(prefixLength: length - 1) == start,
                start.lastInPrefix(prefixLength: length - 1) <= last
            {
                length -= 1
            }
            result.append(IPPrefix(address: start, length: length))
            let end = start.lastInPrefix(prefixLength: length)
            if end >= last { break }
            start = end.adding(1)
        }
        return result
    }
}
