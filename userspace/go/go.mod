module tickgate.dev/go

go 1.19
