import PortcullisNet
import PortcullisSyntax

/// `addresses`, `service` and `group` lists.
extension Checker {
    mutating func checkList(_ list: ListBlock) {
        let name = list.name.value
        if list.items.isEmpty {
            error("\(list.kind.rawValue) '\(name)' is empty", at: list.name.range)
        }
        switch list.kind {
        case .addresses:
            addressSets[name] = list.items.compactMap { prefix($0, what: "address or prefix") }.map {
                $0.hasHostBits && !$0.isHost ? $0.network : $0
            }
        case .service:
            services[name] = list.items.compactMap { portSpec($0, requireProtocol: true) }
        case .group:
            var members: [String] = []
            for entry in list.entries {
                let item = entry.value
                if let selector = entry.selector {
                    error(
                        "group '\(name)' selects containers by \(selector.value) '\(item.value)', which only an inventory of the host knows",
                        at: selector.range,
                        hint:
                            "compile with --inventory docker (the running daemon) or --inventory FILE (a snapshot), or list the containers by name"
                    )
                    continue
                }
                guard let kind = endpointKinds[item.value]?.kind else {
                    unknownName(item, expected: "container", among: .containers)
                    continue
                }
                guard kind == "container" else {
                    error(
                        "group members must be containers; '\(item.value)' is a \(kind)", at: item.range,
                        hint: kind == "group" ? "list the group's containers instead" : nil)
                    continue
                }
                if members.contains(item.value) {
                    error("'\(item.value)' is listed twice in group '\(name)'", at: item.range)
                }
                members.append(item.value)
            }
            groups[name] = members
        }
    }
}
