import PortcullisNet
import PortcullisPolicy

/// A checked policy as a picture for reviews: networks as boxes holding their containers,
/// published ports as arrows from whoever may connect, flows between containers and networks,
/// and egress out of the host. One structure (`PolicyGraph`) and one printer per format.
public struct PolicyGraph: Sendable, Equatable {
    public enum Format: String, Sendable, CaseIterable {
        case dot, mermaid
    }

    public struct Cluster: Sendable, Equatable {
        public let id: String
        /// The network's name in the policy.
        public let name: String
        public let label: String
        /// Containers whose first attachment is this network.
        public var members: [Node]
    }

    public struct Node: Sendable, Equatable {
        public enum Shape: Sendable { case container, outside }
        public let id: String
        public let label: String
        public let shape: Shape
    }

    public struct Edge: Sendable, Equatable {
        public enum Style: Sendable { case attachment, publish, allow, deny, egress }
        public let from: String
        public let to: String
        public let label: String
        public let style: Style
    }

    public var clusters: [Cluster] = []
    /// Who connects from outside (allow-lists, everyone) and where egress goes.
    public var outside: [Node] = []
    public var edges: [Edge] = []

    public init(_ policy: Policy) {
        let networkIDs = Dictionary(
            policy.networks.enumerated().map { ($1.name, "network_\($0)") }, uniquingKeysWith: { a, _ in a })
        let containerIDs = Dictionary(
            policy.containers.enumerated().map { ($1.name, "container_\($0)") }, uniquingKeysWith: { a, _ in a })
        func id(of endpoint: Endpoint) -> String? {
            switch endpoint {
            case .container(let name): containerIDs[name]
            case .network(let name): networkIDs[name]
            }
        }
        clusters = policy.networks.map { network in
            var facts = [network.bridge] + [network.subnet4, network.subnet6].compactMap { $0?.description }
            if network.internal { facts.append("internal") }
            if !network.icc { facts.append("icc deny") }
            return Cluster(
                id: networkIDs[network.name]!, name: network.name,
                label: "network \(network.name) (\(facts.joined(separator: ", ")))",
                members: [])
        }
        var outsideIDs: [String: String] = [:]
        func outsideNode(_ label: String) -> String {
            if let known = outsideIDs[label] { return known }
            let id = "outside_\(outsideIDs.count)"
            outsideIDs[label] = id
            outside.append(Node(id: id, label: label, shape: .outside))
            return id
        }
        for container in policy.containers {
            let addresses = container.attachments.flatMap { [$0.address4, $0.address6].compactMap { $0?.description } }
            let node = Node(
                id: containerIDs[container.name]!, label: ([container.name] + addresses).joined(separator: "\n"),
                shape: .container)
            if let first = container.attachments.first,
                let index = clusters.firstIndex(where: { $0.id == networkIDs[first.network] })
            {
                clusters[index].members.append(node)
            }
            for attachment in container.attachments.dropFirst() {
                if let network = networkIDs[attachment.network] {
                    edges.append(Edge(from: node.id, to: network, label: "also on", style: .attachment))
                }
            }
            for publish in container.publishes {
                let host = (publish.hostAddress.map { "\($0):" } ?? "") + "\(publish.hostPorts)"
                let from = publish.allowedSources.isEmpty ? "anyone" : publish.allowedSourcesText
                edges.append(
                    Edge(
                        from: outsideNode(from), to: node.id,
                        label: "\(host) -> \(publish.containerPorts)/\(publish.transport.rawValue)", style: .publish))
            }
        }
        for rule in policy.rules {
            let ports = rule.ports.isEmpty ? "all traffic" : rule.ports.map(\.description).joined(separator: ", ")
            let destinations: [String]
            switch (rule.kind, rule.egressDestination) {
            case (.egress, .anywhere): destinations = [outsideNode("anywhere")]
            case (.egress, .prefixes(let prefixes)):
                destinations = [outsideNode(prefixes.map(\.description).joined(separator: ", "))]
            default: destinations = rule.destinations.compactMap(id(of:))
            }
            let style: Edge.Style =
                switch rule.kind {
                case .allow: .allow
                case .deny: .deny
                case .egress: .egress
                }
            for source in rule.sources.compactMap(id(of:)) {
                for destination in destinations {
                    edges.append(Edge(from: source, to: destination, label: ports, style: style))
                }
            }
        }
    }

    /// The graph in `format`'s text.
    public func rendered(as format: Format) -> String {
        switch format {
        case .dot: dot
        case .mermaid: mermaid
        }
    }

    /// Graphviz: `dot -Tsvg` draws it.
    var dot: String {
        func quoted(_ text: String) -> String {
            "\"" + text.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"").replacing("\n", with: "\\n") + "\""
        }
        var lines = [
            "digraph policy {", "    rankdir=LR;", "    compound=true;",
            "    node [fontname=\"Helvetica\", fontsize=10];", "    edge [fontname=\"Helvetica\", fontsize=9];",
        ]
        let referenced = Set(edges.flatMap { [$0.from, $0.to] })
        for cluster in clusters {
            lines.append("    subgraph cluster_\(cluster.id) {")
            lines.append("        label=\(quoted(cluster.label));")
            lines.append("        style=rounded;")
            // An anchor, so that flows and attachments can point at the network itself; shown
            // only where a flow starts or ends there.
            lines.append(
                referenced.contains(cluster.id)
                    ? "        \(cluster.id) [shape=plaintext, label=\(quoted("any container on \(cluster.name)"))];"
                    : "        \(cluster.id) [shape=point, style=invis];")
            for member in cluster.members {
                lines.append("        \(member.id) [shape=box, label=\(quoted(member.label))];")
            }
            lines.append("    }")
        }
        for node in outside {
            lines.append("    \(node.id) [shape=ellipse, style=dashed, label=\(quoted(node.label))];")
        }
        // Where each node is drawn: an edge from a network to one of its own containers (or
        // back) points at the network's anchor, since Graphviz cannot clip it at the box.
        var clusterOf: [String: String] = [:]
        for cluster in clusters {
            clusterOf[cluster.id] = cluster.id
            for member in cluster.members { clusterOf[member.id] = cluster.id }
        }
        for edge in edges {
            var attributes = ["label=\(quoted(edge.label))"]
            switch edge.style {
            case .attachment: attributes.append("style=dotted, arrowhead=none")
            case .publish: attributes.append("color=blue")
            case .allow: attributes.append("color=darkgreen")
            case .deny: attributes.append("color=red, style=dashed")
            case .egress: attributes.append("color=darkorange, style=bold")
            }
            let apart = clusterOf[edge.from] != clusterOf[edge.to]
            if apart, clusterOf[edge.from] == edge.from { attributes.append("ltail=cluster_\(edge.from)") }
            if apart, clusterOf[edge.to] == edge.to { attributes.append("lhead=cluster_\(edge.to)") }
            lines.append("    \(edge.from) -> \(edge.to) [\(attributes.joined(separator: ", "))];")
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Mermaid flowchart: GitHub and GitLab draw it in Markdown.
    var mermaid: String {
        func quoted(_ text: String) -> String {
            "\"" + text.replacing("\"", with: "#quot;").replacing("\n", with: "<br/>") + "\""
        }
        var lines = ["flowchart LR"]
        for cluster in clusters {
            lines.append("    subgraph \(cluster.id)[\(quoted(cluster.label))]")
            for member in cluster.members { lines.append("        \(member.id)[\(quoted(member.label))]") }
            lines.append("    end")
        }
        for node in outside { lines.append("    \(node.id)([\(quoted(node.label))])") }
        for edge in edges {
            let label = quoted(edge.label)
            let arrow =
                switch edge.style {
                case .attachment: "-. \(label) .-"
                case .deny: "-. \(label) .-x"
                case .egress: "== \(label) ==>"
                case .publish, .allow: "-- \(label) -->"
                }
            lines.append("    \(edge.from) \(arrow) \(edge.to)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension Application {
    /// Draws a policy as a graph (see `PolicyGraph`).
    public func runGraph(_ policy: String, format: PolicyGraph.Format) throws -> RunStatus {
        let (checked, _) = try check(policy)
        console.output(PolicyGraph(checked).rendered(as: format))
        return .clean
    }
}
