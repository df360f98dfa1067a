/// Transport protocols a policy can publish or filter on.
public enum TransportProtocol: String, Sendable, Hashable, CaseIterable, Comparable, Codable {
    case tcp
    case udp
    case sctp

    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// An inclusive port range; a single port has `first == last`.
public struct PortRange: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let first: UInt16
    public let last: UInt16

    public init(_ port: UInt16) {
        first = port
        last = port
    }

    /// Callers check `first <= last`; the parser reports reversed ranges as errors.
    public init(_ first: UInt16, _ last: UInt16) {
        self.first = first
        self.last = last
    }

    public var count: Int { Int(last) - Int(first) + 1 }
    public var isSingle: Bool { first == last }

    public func contains(_ port: UInt16) -> Bool { first <= port && port <= last }

    public func overlaps(_ other: PortRange) -> Bool { first <= other.last && other.first <= last }

    public static func < (a: PortRange, b: PortRange) -> Bool { (a.first, a.last) < (b.first, b.last) }

    /// `80` or `8000-8010`: the form the policy language uses.
    public var description: String { isSingle ? "\(first)" : "\(first)-\(last)" }

    public enum ParseError: Error, Equatable, Sendable {
        case notANumber
        case outOfRange
        case reversed
    }

    /// Parses `PORT` or `FIRST-LAST`; ports are 1...65535.
    public static func parse(_ text: Substring) -> Result<PortRange, ParseError> {
        // `PORT` or `FIRST-LAST`, read byte by byte: a large host's policy holds many of them.
        var values: [Int] = []
        var value = 0
        var digits = 0
        func close() -> ParseError? {
            guard digits > 0 else { return .notANumber }
            guard digits <= 5, (1...65535).contains(value) else { return .outOfRange }
            values.append(value)
            (value, digits) = (0, 0)
            return nil
        }
        for byte in text.utf8 {
            if byte == UInt8(ascii: "-") && values.isEmpty {
                if let error = close() { return .failure(error) }
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return .failure(.notANumber) }
            if digits < 6 { value = value * 10 + Int(byte - UInt8(ascii: "0")) }
            digits += 1
        }
        if let error = close() { return .failure(error) }
        if values.count == 1 { return .success(PortRange(UInt16(values[0]))) }
        guard values[0] <= values[1] else { return .failure(.reversed) }
        return .success(PortRange(UInt16(values[0]), UInt16(values[1])))
    }
}

/// Linux network interface names: at most 15 bytes (IFNAMSIZ - 1), no `/`, no whitespace,
/// not `.` or `..`, and nothing else that could break out of a ruleset token.
public enum InterfaceName {
    public static let maximumLength = 15

    public enum Problem: Equatable, Sendable {
        case empty
        case tooLong(bytes: Int)
        case forbiddenCharacter(Character)
        case reserved
    }

    public static func validate(_ name: String) -> Problem? {
        if name.isEmpty { return .empty }
        if name == "." || name == ".." { return .reserved }
        if let bad = name.first(where: { !isAllowed($0) }) { return .forbiddenCharacter(bad) }
        let bytes = name.utf8.count
        if bytes > maximumLength { return .tooLong(bytes: bytes) }
        return nil
    }

    /// The kernel allows any byte but `/`, `:` (alias syntax) and whitespace; we also refuse
    /// quotes, `#`, `;`, braces, `+` (an iptables wildcard) and other metacharacters so that an interface name can
    /// never change the meaning of a rendered ruleset.
    static func isAllowed(_ c: Character) -> Bool {
        guard c.isASCII, let v = c.asciiValue, v > 0x20, v < 0x7F else { return false }
        return c.isLetter || c.isNumber || "-_.@".contains(c)
    }
}
