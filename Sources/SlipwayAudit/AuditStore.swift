// The audit store comes here (issue 3, in progress).
