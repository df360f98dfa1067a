/// A CIDR prefix such as `172.17.0.0/16` or `fd00::/64`.
///
/// The stored address keeps the host bits the user wrote (`172.17.42.1/16` names both the
/// gateway and the subnet); `network` gives the masked form rules are written with.
public struct IPPrefix: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    public init(address: IPAddress, length: Int) {
        self.address = address
        self.length = length
    }

    /// A single-address prefix (`/32` or `/128`).
    public init(host: IPAddress) {
        self.init(address: host, length: host.family.bitWidth)
    }

    /// The loopback addresses, `127.0.0.0/8` and `::1`: publishes on them are for the host only.
    public static func loopback(_ family: IPFamily) -> IPPrefix {
        family == .ipv4
            ? IPPrefix(address: IPAddress(ipv4: 0x7F00_0000), length: 8) : IPPrefix(host: IPAddress(ipv6: 0, 1))
    }

    public enum ParseError: Error, Equatable, Sendable {
        case badAddress
        case badLength(max: Int)
    }

    /// Parses `ADDRESS[/LENGTH]`; without a length the prefix covers one address.
    public static func parse(_ text: Substring) -> Result<IPPrefix, ParseError> {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return .failure(.badAddress) }
        let width = address.family.bitWidth
        guard parts.count == 2 else { return .success(IPPrefix(host: address)) }
        guard let length = Int(parts[1]), parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
            (0...width).contains(length)
        else { return .failure(.badLength(max: width)) }
        return .success(IPPrefix(address: address, length: length))
    }

    public var family: IPFamily { address.family }
    public var network: IPPrefix { IPPrefix(address: address.masked(prefixLength: length), length: length) }
    public var first: IPAddress { address.masked(prefixLength: length) }
    public var last: IPAddress { address.lastInPrefix(prefixLength: length) }
    public var isHost: Bool { length == family.bitWidth }
    /// True when the stored address has host bits set (`10.0.0.1/8`).
    public var hasHostBits: Bool { address != first }

    public func contains(_ other: IPAddress) -> Bool {
        other.family == family && other.masked(prefixLength: length) == first
    }

    public func overlaps(_ other: IPPrefix) -> Bool {
        guard other.family == family else { return false }
        let shorter = min(length, other.length)
        return address.masked(prefixLength: shorter) == other.address.masked(prefixLength: shorter)
    }

    /// `ADDRESS/LENGTH`, always with the length (the form iptables-save prints).
    public var description: String { "\(address)/\(length)" }
}
