/// The address family a rule, network or address belongs to.
public enum IPFamily: String, Sendable, Hashable, CaseIterable, Codable {
    case ipv4
    case ipv6

    /// Number of bits in an address of this family.
    public var bitWidth: Int { self == .ipv4 ? 32 : 128 }
}

/// An IPv4 or IPv6 address held as a 128-bit value (IPv4 uses the low 32 bits).
///
/// One type for both families keeps prefix arithmetic, set intervals and packet
/// evaluation free of duplicated per-family code.
public struct IPAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let family: IPFamily
    /// High and low 64 bits of the address; IPv4 lives in `low`.
    public let high: UInt64
    public let low: UInt64

    public init(ipv4 value: UInt32) {
        family = .ipv4
        high = 0
        low = UInt64(value)
    }

    public init(ipv6 high: UInt64, _ low: UInt64) {
        family = .ipv6
        self.high = high
        self.low = low
    }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text; returns nil for anything else.
    public init?(_ text: Substring) {
        if text.utf8.contains(UInt8(ascii: ":")) {
            guard let (h, l) = IPAddress.parseIPv6(text) else { return nil }
            self.init(ipv6: h, l)
        } else {
            guard let v = IPAddress.parseIPv4(text) else { return nil }
            self.init(ipv4: v)
        }
    }

    public init?(_ text: String) { self.init(Substring(text)) }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        (a.family == .ipv4 ? 0 : 1, a.high, a.low) < (b.family == .ipv4 ? 0 : 1, b.high, b.low)
    }

    public var description: String {
        family == .ipv4 ? IPAddress.formatIPv4(UInt32(truncatingIfNeeded: low)) : formatIPv6()
    }

    /// `0.0.0.0` or `::`: "every address of the host" when binding.
    public var isUnspecified: Bool { high == 0 && low == 0 }

    /// The address with the low `hostBits` bits cleared.
    public func masked(prefixLength: Int) -> IPAddress {
        let width = family.bitWidth
        let hostBits = width - prefixLength
        if family == .ipv4 {
            let mask: UInt64 = hostBits >= 32 ? 0 : (UInt64(0xFFFF_FFFF) << hostBits) & 0xFFFF_FFFF
            return IPAddress(ipv4: UInt32(low & mask))
        }
        let (mh, ml) = IPAddress.mask128(prefixLength: prefixLength)
        return IPAddress(ipv6: high & mh, low & ml)
    }

    /// The last address of the prefix of this length that contains the address.
    public func lastInPrefix(prefixLength: Int) -> IPAddress {
        if family == .ipv4 {
            let hostBits = 32 - prefixLength
            let hostMask: UInt64 = hostBits >= 32 ? 0xFFFF_FFFF : (UInt64(1) << hostBits) - 1
            return IPAddress(ipv4: UInt32(low | hostMask))
        }
        let (mh, ml) = IPAddress.mask128(prefixLength: prefixLength)
        return IPAddress(ipv6: high | ~mh, low | ~ml)
    }

    /// This address plus `offset` (wrapping within the family's width).
    public func adding(_ offset: UInt64) -> IPAddress {
        if family == .ipv4 { return IPAddress(ipv4: UInt32(truncatingIfNeeded: low &+ offset)) }
        let (sum, overflow) = low.addingReportingOverflow(offset)
        return IPAddress(ipv6: high &+ (overflow ? 1 : 0), sum)
    }

    static func mask128(prefixLength: Int) -> (UInt64, UInt64) {
        let p = max(0, min(128, prefixLength))
        let mh: UInt64 = p >= 64 ? .max : (p == 0 ? 0 : .max << (64 - p))
        let ml: UInt64 = p <= 64 ? 0 : (p == 128 ? .max : .max << (128 - p))
        return (mh, ml)
    }

    /// Four decimal octets without leading zeros, read byte by byte (policies of large hosts
    /// hold tens of thousands of addresses).
    static func parseIPv4(_ text: Substring) -> UInt32? {
        var value: UInt32 = 0
        var octet: UInt32 = 0
        var digits = 0
        var octets = 0
        var leadingZero = false
        for byte in text.utf8 {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, octets < 3 else { return nil }
                value = value << 8 | octet
                (octet, digits, octets) = (0, 0, octets + 1)
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), !leadingZero || digits == 0 else { return nil }
            if digits == 0 { leadingZero = byte == UInt8(ascii: "0") }
            octet = octet * 10 + UInt32(byte - UInt8(ascii: "0"))
            digits += 1
            guard digits <= 3, octet <= 255 else { return nil }
        }
        guard digits > 0, octets == 3 else { return nil }
        return value << 8 | octet
    }

    static func formatIPv4(_ v: UInt32) -> String {
        "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
    }

    static func parseIPv6(_ text: Substring) -> (UInt64, UInt64)? {
        guard !text.isEmpty, text.count <= 45 else { return nil }
        var groups: [UInt16] = []
        var tailGroups: [UInt16] = []
        var sawDoubleColon = false
        var halves: [String] = []
        if let range = text.firstRange(of: "::") {
            let rest = text[range.upperBound...]
            guard !rest.contains("::") else { return nil }
            halves = [String(text[..<range.lowerBound]), String(rest)]
        } else {
            halves = [String(text)]
        }
        func parseGroups(_ s: String, allowIPv4Tail: Bool) -> [UInt16]? {
            if s.isEmpty { return [] }
            var out: [UInt16] = []
            let pieces = s.split(separator: ":", omittingEmptySubsequences: false)
            for (i, piece) in pieces.enumerated() {
                if allowIPv4Tail && i == pieces.count - 1 && piece.contains(".") {
                    guard let v4 = parseIPv4(piece) else { return nil }
                    out.append(UInt16(v4 >> 16))
                    out.append(UInt16(v4 & 0xFFFF))
                    continue
                }
                guard (1...4).contains(piece.count), piece.allSatisfy({ $0.isHexDigit && $0.isASCII }),
                    let g = UInt16(piece, radix: 16)
                else { return nil }
                out.append(g)
            }
            return out
        }
        if halves.count == 2 {
            sawDoubleColon = true
            guard let head = parseGroups(halves[0], allowIPv4Tail: false),
                let tail = parseGroups(halves[1], allowIPv4Tail: true)
            else { return nil }
            groups = head
            tailGroups = tail
            guard groups.count + tailGroups.count <= 7 else { return nil }
        } else {
            guard let all = parseGroups(halves[0], allowIPv4Tail: true), all.count == 8 else { return nil }
            groups = all
        }
        var full = groups
        if sawDoubleColon {
            full += Array(repeating: 0, count: 8 - groups.count - tailGroups.count) + tailGroups
        }
        var h: UInt64 = 0
        var l: UInt64 = 0
        for i in 0..<4 { h = h << 16 | UInt64(full[i]) }
        for i in 4..<8 { l = l << 16 | UInt64(full[i]) }
        return (h, l)
    }

    /// RFC 5952 canonical text: lowercase, longest zero run (of two or more) compressed.
    func formatIPv6() -> String {
        var g: [UInt16] = []
        for i in (0..<4).reversed() { g.append(UInt16(truncatingIfNeeded: high >> (UInt64(i) * 16))) }
        for i in (0..<4).reversed() { g.append(UInt16(truncatingIfNeeded: low >> (UInt64(i) * 16))) }
        var bestStart = -1
        var bestLen = 0
        var i = 0
        while i < 8 {
            if g[i] == 0 {
                var j = i
                while j < 8 && g[j] == 0 { j += 1 }
                if j - i > bestLen && j - i >= 2 {
                    bestStart = i
                    bestLen = j - i
                }
                i = j
            } else {
                i += 1
            }
        }
        let hex = g.map { String($0, radix: 16) }
        if bestStart < 0 { return hex.joined(separator: ":") }
        let head = hex[0..<bestStart].joined(separator: ":")
        let tail = hex[(bestStart + bestLen)...].joined(separator: ":")
        return head + "::" + tail
    }
}
