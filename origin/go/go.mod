module wxedge/wxidentity

go 1.19
