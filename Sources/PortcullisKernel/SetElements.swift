import JanssonKit

/// The set and map elements of an nft JSON document (rendered by Portcullis or listed by
/// libnftables), by set, in a form where two spellings of one element compare equal.
///
/// An apply over tables whose kernel generation moved compares them with it: the elements the
/// kernel lists must be the ones the previous generation applied.
struct SetElements: Equatable {
    /// "family table name" -> canonical element -> the element as written.
    var elements: [String: [JSON: JSON]] = [:]

    init(document: JSON) {
        for object in document["nftables"]?.arrayValue ?? [] {
            guard let (_, body) = Self.setBody(object) else { continue }
            var members: [JSON: JSON] = [:]
            for element in body["elem"]?.arrayValue ?? [] { members[element.canonical] = element }
            elements[Self.name(body)] = members
        }
    }

    static func == (a: Self, b: Self) -> Bool {
        a.elements.mapValues { Set($0.keys) } == b.elements.mapValues { Set($0.keys) }
    }

    /// `set` or `map`, and its body.
    static func setBody(_ object: JSON) -> (String, JSON)? {
        for kind in ["set", "map"] { if let body = object[kind] { return (kind, body) } }
        return nil
    }

    static func name(_ body: JSON) -> String {
        [body["family"], body["table"], body["name"]].map { $0?.stringValue ?? "" }.joined(separator: " ")
    }
}

/// What turns one applied nft text into another when only set and map elements differ: the
/// elements to delete and to add, per set, as one libnftables batch of nft commands. Found from
/// the texts' line groups, so an apply over a large host compares elements, never documents.
struct ElementChange {
    var removed = 0
    var added = 0
    /// `delete element` commands first, then `add element`: an element whose mapped value
    /// changed is deleted and added again in the same transaction.
    var batch = ""

    /// nil when anything but elements differs (tables, chains, rules, set declarations, order).
    init?(from old: NftText, to new: NftText, diff: RulesetDiff) {
        guard old.skeleton == new.skeleton else { return nil }
        var additions = ""
        for group in diff.groups where group.kind == .set {
            if !group.removed.isEmpty {
                // A map element is deleted by its key.
                let keys = new.maps.contains(group.place) ? group.removed.map { Self.key(of: $0) } : group.removed
                batch += "delete element \(group.place) { \(keys.joined(separator: ", ")) }\n"
            }
            if !group.added.isEmpty {
                additions += "add element \(group.place) { \(group.added.joined(separator: ", ")) }\n"
            }
            removed += group.removed.count
            added += group.added.count
        }
        batch += additions
    }

    static func key(of element: String) -> String {
        element.firstRange(of: " : ").map { String(element[..<$0.lowerBound]) } ?? element
    }
}

extension JSON {
    /// The same value with every object's keys in sorted order, so that documents written by
    /// different programs compare by content.
    var canonical: JSON {
        switch self {
        case .object(let members): .object(members.map { ($0.0, $0.1.canonical) }.sorted { $0.0 < $1.0 })
        case .array(let items): .array(items.map(\.canonical))
        default: self
        }
    }
}
