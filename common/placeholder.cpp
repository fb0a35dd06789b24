// Removed once the first shared helper lands in common/.
namespace shmstats::common {}
