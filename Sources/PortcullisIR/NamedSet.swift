import PortcullisNet

/// An nftables named set or map: the native layout keeps per-container and per-port data in
/// these so that the number of rules does not grow with the number of containers.
public struct NamedSet: Sendable, Hashable {
    public enum KeyType: String, Sendable, Hashable {
        case ipv4Address = "ipv4_addr"
        case ipv6Address = "ipv6_addr"
        case service = "inet_service"
        case transport = "inet_proto"
        case interfaceName = "ifname"
    }

    /// What a map yields for a key; nil for a plain set.
    public enum MapValue: Sendable, Hashable {
        case verdict
        case data([KeyType])
    }

    public var name: String
    /// One type per component of a concatenated key.
    public var keyTypes: [KeyType]
    public var mapValue: MapValue?
    /// Elements may be prefixes and ranges (`flags interval`).
    public var interval: Bool
    public var elements: [SetElement]

    public init(name: String, keyTypes: [KeyType], mapValue: MapValue? = nil, interval: Bool, elements: [SetElement]) {
        self.name = name
        self.keyTypes = keyTypes
        self.mapValue = mapValue
        self.interval = interval
        self.elements = elements
    }
}

/// One component of a set key or map value.
public enum SetValue: Sendable, Hashable {
    case address(IPPrefix)
    case ports(PortRange)
    case transport(TransportProtocol)
    case interface(String)
}

public enum MapResult: Sendable, Hashable {
    case verdict(Action)
    case data([SetValue])
}

public struct SetElement: Sendable, Hashable {
    public var key: [SetValue]
    public var value: MapResult?
    /// The policy statement the element stands for; not rendered, used by explain and audit.
    public var provenance: Provenance?

    public init(key: [SetValue], value: MapResult? = nil, provenance: Provenance? = nil) {
        self.key = key
        self.value = value
        self.provenance = provenance
    }
}

extension SetValue {
    /// Whether this component of a set element covers a packet's value for the same field: an
    /// address inside the prefix, a port inside the range, the same protocol or interface.
    public func covers(_ value: SetValue) -> Bool {
        switch (self, value) {
        case (.address(let prefix), .address(let other)):
            prefix.family == other.family && prefix.length <= other.length && prefix.contains(other.address)
        case (.ports(let range), .ports(let other)): range.first <= other.first && other.last <= range.last
        case (.transport(let t), .transport(let other)): t == other
        case (.interface(let name), .interface(let other)): name == other
        default: false
        }
    }
}

extension NamedSet {
    /// The element a packet's key falls into, as the kernel looks it up; nil when none does.
    /// Elements of one set never overlap (nft refuses overlapping intervals), so the first
    /// covering element is the only one.
    public func element(covering key: [SetValue]) -> SetElement? {
        elements.first { element in
            element.key.count == key.count && zip(element.key, key).allSatisfy { $0.covers($1) }
        }
    }
}
