module github.com/wx-edge/wx-edge/origin/go

go 1.19
