/// The chains Docker's iptables firewaller writes, by the names Docker gives them. The layouts
/// write them and import reads them back by these constants, so a rename changes both
/// directions at once.
public enum DockerChain {
    /// Published ports (filter) and their DNAT (nat).
    public static let docker = "DOCKER"
    /// Docker 28 and 29: each network's ICC and outgoing rules, jumped to from FORWARD.
    public static let forward = "DOCKER-FORWARD"
    /// Docker 28 and 29: conntrack accepts per bridge.
    public static let conntrack = "DOCKER-CT"
    /// Docker 28 and 29: the jump to DOCKER per bridge.
    public static let bridge = "DOCKER-BRIDGE"
    public static let isolationStage1 = "DOCKER-ISOLATION-STAGE-1"
    public static let isolationStage2 = "DOCKER-ISOLATION-STAGE-2"
    /// Docker 29: internal networks' drops.
    public static let `internal` = "DOCKER-INTERNAL"
    /// Where users' own rules go, jumped to first from FORWARD.
    public static let user = "DOCKER-USER"
}
