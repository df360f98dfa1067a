import ArgumentParser
import PortcullisCompiler

extension PolicyGraph.Format: ExpressibleByArgument {}

struct Graph: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw a policy: networks, containers, published ports, flows and egress.",
        discussion: """
            Networks are boxes holding the containers first attached to them (with their \
            addresses); a container on more networks has a dotted line to each other one. Blue \
            arrows are published ports, from whoever may connect (an allow-list, or anyone); green \
            arrows are allowed flows, red dashed ones denied flows, orange bold ones egress. The \
            dot format is for Graphviz, mermaid for Markdown pages that draw Mermaid diagrams.

            Examples:
              portcullis graph policies/web-stack.policy | dot -Tsvg > web-stack.svg
              portcullis graph policies/web-stack.policy --format mermaid
            """)

    @Argument(help: "The policy file.", completion: .file(extensions: ["policy"]))
    var policy: String

    @Option(help: "dot or mermaid.")
    var format: PolicyGraph.Format = .dot

    func run() throws { try execute { try $0.runGraph(policy, format: format) } }
}
