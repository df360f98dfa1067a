/// An nft text (a native table) as its structure and its set and map elements: what `watch`
/// keeps of the kernel's table to change elements without compiling the whole host.
public struct ElementTable: Sendable {
    /// Every line but the elements, in order.
    public let skeleton: [String]
    /// Each set's and map's declaration lines (`type ...`, `flags interval`), by place
    /// (`inet portcullis known-v4`).
    public let declarations: [String: [String]]
    /// Each set's and map's elements, by place.
    public private(set) var elements: [String: Set<String>]
    /// The places of maps, whose elements are deleted by key.
    public let maps: Set<String>
    /// Each map's elements by key.
    public private(set) var keyed: [String: [String: String]] = [:]

    public init(_ text: String) {
        let parsed = NftText(text)
        skeleton = parsed.skeleton.map(String.init)
        maps = parsed.maps
        var declarations: [String: [String]] = [:]
        for group in parsed.groups where group.key.kind == .set {
            let count = group.lines.count - (parsed.elements[group.key.place]?.count ?? 0)
            declarations[group.key.place] = Array(group.lines.prefix(count))
        }
        self.declarations = declarations
        elements = parsed.elements.mapValues(Set.init)
        for place in maps {
            keyed[place] = Dictionary(
                (elements[place] ?? []).map { (Self.key(of: $0), $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    /// The key of a map element (`tcp . 8080 : 198.18.0.2` is keyed `tcp . 8080`); a set's
    /// element is its own key.
    public static func key(of element: String) -> String { ElementChange.key(of: element) }

    /// Removes, then adds elements (by place), as `batch(removing:adding:)` tells the kernel.
    public mutating func apply(removing removed: [String: Set<String>], adding added: [String: Set<String>]) {
        for (place, lines) in removed {
            elements[place]?.subtract(lines)
            if maps.contains(place) { for line in lines { keyed[place]?[Self.key(of: line)] = nil } }
        }
        for (place, lines) in added {
            elements[place, default: []].formUnion(lines)
            if maps.contains(place) { for line in lines { keyed[place, default: [:]][Self.key(of: line)] = line } }
        }
    }

    /// The nft commands of one transaction that remove, then add elements: a map's element is
    /// deleted by its key, so one whose value changes is deleted and added again.
    public func batch(removing removed: [String: Set<String>], adding added: [String: Set<String>]) -> String {
        var text = ""
        for (place, lines) in removed.sorted(by: { $0.key < $1.key }) where !lines.isEmpty {
            let keys = maps.contains(place) ? lines.map(Self.key) : Array(lines)
            text += "delete element \(place) { \(keys.sorted().joined(separator: ", ")) }\n"
        }
        for (place, lines) in added.sorted(by: { $0.key < $1.key }) where !lines.isEmpty {
            text += "add element \(place) { \(lines.sorted().joined(separator: ", ")) }\n"
        }
        return text
    }
}
