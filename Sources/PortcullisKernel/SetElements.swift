import JanssonKit

/// The set and map elements of an nft JSON document (rendered by Portcullis or listed by
/// libnftables), by set, in a form where two spellings of one element compare equal.
///
/// Incremental apply rests on it: two rulesets that differ only here can be changed into one
/// another with `add element` / `delete element` commands instead of a table replacement.
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

/// What turns one applied nft JSON document into another when only set and map elements
/// differ: the elements to delete and to add, per set, as one libnftables JSON batch.
struct ElementChange {
    var removed = 0
    var added = 0
    /// `delete element` commands first, then `add element`: an element whose mapped value
    /// changed is deleted and added again in the same transaction.
    var commands: [JSON] = []

    var batch: String { JSON.object([("nftables", .array(commands))]).rendered(indent: 0) }

    /// nil when anything but elements differs (tables, chains, rules, set declarations, order).
    init?(from old: String, to new: String) {
        guard let oldDocument = try? JSON.parse(old), let newDocument = try? JSON.parse(new),
            let oldObjects = oldDocument["nftables"]?.arrayValue?.filter({ $0["metainfo"] == nil }),
            let newObjects = newDocument["nftables"]?.arrayValue?.filter({ $0["metainfo"] == nil }),
            oldObjects.count == newObjects.count
        else { return nil }
        var deletions: [JSON] = []
        var additions: [JSON] = []
        for (before, after) in zip(oldObjects, newObjects) {
            guard let (kind, oldBody) = SetElements.setBody(before), let (newKind, newBody) = SetElements.setBody(after)
            else {
                if before.canonical != after.canonical { return nil }
                continue
            }
            guard kind == newKind, oldBody.withoutElements.canonical == newBody.withoutElements.canonical else {
                return nil
            }
            let oldElements = Dictionary(
                (oldBody["elem"]?.arrayValue ?? []).map { ($0.canonical, $0) }, uniquingKeysWith: { a, _ in a })
            let newElements = Dictionary(
                (newBody["elem"]?.arrayValue ?? []).map { ($0.canonical, $0) }, uniquingKeysWith: { a, _ in a })
            // Keys only for a delete: a map element is `[key, value]`.
            let gone = (oldBody["elem"]?.arrayValue ?? []).filter { newElements[$0.canonical] == nil }.map {
                kind == "map" ? ($0.arrayValue?.first ?? $0) : $0
            }
            let new = (newBody["elem"]?.arrayValue ?? []).filter { oldElements[$0.canonical] == nil }
            func command(_ verb: String, _ elements: [JSON]) -> JSON {
                .object([
                    (
                        verb,
                        .object([
                            (
                                "element",
                                .object([
                                    ("family", newBody["family"] ?? .null), ("table", newBody["table"] ?? .null),
                                    ("name", newBody["name"] ?? .null), ("elem", .array(elements)),
                                ])
                            )
                        ])
                    )
                ])
            }
            if !gone.isEmpty { deletions.append(command("delete", gone)) }
            if !new.isEmpty { additions.append(command("add", new)) }
            removed += gone.count
            added += new.count
        }
        commands = deletions + additions
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

    /// A set or map declaration without its elements.
    var withoutElements: JSON {
        guard case .object(let members) = self else { return self }
        return .object(members.filter { $0.0 != "elem" })
    }
}
