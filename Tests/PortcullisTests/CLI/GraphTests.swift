import Foundation
import PortcullisCompiler
import Testing

/// `portcullis graph`: whole outputs for a shipped policy in both formats, what each kind of
/// statement becomes, and Graphviz accepting the picture of every shipped policy.
struct GraphTests {
    func graph(_ policy: String, _ format: PolicyGraph.Format) throws -> String {
        let transcript = Transcript()
        let status = try Application(console: transcript).runGraph(Repo.policies + "/" + policy, format: format)
        #expect(status == .clean)
        return transcript.stdout
    }

    @Test func webStackAsDot() throws {
        #expect(
            try graph("web-stack.policy", .dot) == """
                digraph policy {
                    rankdir=LR;
                    compound=true;
                    node [fontname="Helvetica", fontsize=10];
                    edge [fontname="Helvetica", fontsize=9];
                    subgraph cluster_network_0 {
                        label="network bridge (docker0, 172.17.0.0/16)";
                        style=rounded;
                        network_0 [shape=point, style=invis];
                    }
                    subgraph cluster_network_1 {
                        label="network front (br-front, 198.18.1.0/24)";
                        style=rounded;
                        network_1 [shape=point, style=invis];
                        container_0 [shape=box, label="web\\n198.18.1.10"];
                    }
                    subgraph cluster_network_2 {
                        label="network back (br-back, 198.18.2.0/24, icc deny)";
                        style=rounded;
                        network_2 [shape=point, style=invis];
                        container_1 [shape=box, label="api\\n198.18.2.10"];
                        container_2 [shape=box, label="db\\n198.18.2.20"];
                    }
                    outside_0 [shape=ellipse, style=dashed, label="anyone"];
                    outside_0 -> container_0 [label="80 -> 8080/tcp", color=blue];
                    outside_0 -> container_0 [label="443 -> 8443/tcp", color=blue];
                    container_0 -> container_1 [label="8000/tcp", color=darkgreen];
                    container_1 -> container_2 [label="5432/tcp", color=darkgreen];
                }

                """)
    }

    @Test func webStackAsMermaid() throws {
        #expect(
            try graph("web-stack.policy", .mermaid) == """
                flowchart LR
                    subgraph network_0["network bridge (docker0, 172.17.0.0/16)"]
                    end
                    subgraph network_1["network front (br-front, 198.18.1.0/24)"]
                        container_0["web<br/>198.18.1.10"]
                    end
                    subgraph network_2["network back (br-back, 198.18.2.0/24, icc deny)"]
                        container_1["api<br/>198.18.2.10"]
                        container_2["db<br/>198.18.2.20"]
                    end
                    outside_0(["anyone"])
                    outside_0 -- "80 -> 8080/tcp" --> container_0
                    outside_0 -- "443 -> 8443/tcp" --> container_0
                    container_0 -- "8000/tcp" --> container_1
                    container_1 -- "5432/tcp" --> container_2

                """)
    }

    /// Allow-lists, denied flows, flows from a whole network, egress and second networks each
    /// get their own kind of edge.
    @Test func everyKindOfStatementIsDrawn() throws {
        let restricted = try graph("source-restricted.policy", .dot)
        #expect(restricted.contains("label=\"office\""))
        #expect(restricted.contains("[label=\"8443 -> 443/tcp\", color=blue]"))
        let groups = try graph("groups.policy", .dot)
        #expect(groups.contains("[label=\"all traffic\", color=red, style=dashed]"))
        #expect(groups.contains("[shape=plaintext, label=\"any container on work\"]"))
        let egress = try graph("egress-only.policy", .mermaid)
        #expect(egress.contains("== \"443/tcp\" ==> outside_"))
        let multi = try graph("multi-network.policy", .dot)
        #expect(multi.contains("[label=\"also on\", style=dotted, arrowhead=none, lhead=cluster_network_"))
    }

    /// Graphviz draws every shipped policy without a warning (CI installs it; elsewhere the test
    /// needs `dot` on the PATH).
    @Test func graphvizDrawsEveryShippedPolicy() throws {
        let found = run(["which", "dot"]).status == 0
        try #require(found || !Kernel.inCI, "CI must have Graphviz (.ci/setup installs it)")
        guard found else { return }
        for path in Repo.shippedPolicies {
            let drawn = run(["dot", "-Tsvg"], input: try graph((path as NSString).lastPathComponent, .dot))
            #expect(drawn.status == 0 && drawn.stderr.isEmpty, "\(path): \(drawn.stderr)")
            #expect(drawn.stdout.contains("<svg"))
        }
    }
}
